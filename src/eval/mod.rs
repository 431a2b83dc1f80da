//! Evaluation (spec §8): ranks and R@K metrics from a similarity matrix,
//! protocols (f30k, coco1k, coco5k) and sharded exact scoring.
