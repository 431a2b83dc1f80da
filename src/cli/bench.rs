//! `dbl bench`: times one benchmark configuration (issue #5; see
//! `tools/bench/README.md` for the configurations, the deterministic inputs and
//! the JSON line, and `BENCHMARKS.md` for results). `--warmup` untimed
//! repetitions (default 1), then `--reps` timed ones, all in a dedicated rayon pool of `--threads`.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::bench::BenchError;
use crate::bench::config::{BenchConfig, CONFIGS, FULL_CAPTIONS, FULL_IMAGES, Kind};
use crate::bench::measure::{cpu_seconds, load_average, median, peak_rss_kb};
use crate::bench::score::{Phases, ScoreBench};
use crate::bench::train::TrainBench;
use crate::bench::{flops, measure};
use crate::engine::device::{self, Device, DeviceError};
use crate::engine::gemm::Par;
use crate::model::precision::HeadPrecision;

/// Arguments of `dbl bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration: scan-train-baseline, scan-train-baseline-e256, scan-train-oss,
    /// vse-train, scan-score, vse-score, sgr-train, saf-train, sgr-score or saf-score
    /// (tools/bench/configs.py).
    #[arg(long, value_name = "NAME")]
    pub config: String,
    /// Threads of the dedicated rayon pool every kernel runs on.
    #[arg(long, default_value_t = 1, value_name = "T")]
    pub threads: usize,
    /// Timed repetitions after the untimed warm-up ones.
    #[arg(long, default_value_t = 5, value_name = "R")]
    pub reps: usize,
    /// Untimed warm-up repetitions first (0 for the ~10-minute full scoring split).
    #[arg(long, default_value_t = 1, value_name = "W")]
    pub warmup: usize,
    /// Scoring configs: images 0..N of the deterministic split (default 1000, F30K test).
    #[arg(long, value_name = "N")]
    pub images: Option<usize>,
    /// Scoring configs: captions 0..M of the deterministic split (default 5000).
    #[arg(long, value_name = "M")]
    pub captions: Option<usize>,
    /// Seed of the models' initialisation (does not change the work).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// scan-score only: precision of the similarity head's projection. `bf16`
    /// runs `D·W_tᵀ` on Intel AMX (compare with `bench_peer.py --head-precision
    /// bf16`, which scores under `torch.autocast("cpu", torch.bfloat16)`).
    #[arg(long, value_enum, default_value_t = HeadPrecision::F32)]
    pub head_precision: HeadPrecision,
    /// Scoring configs: run on the CPU engine or on the GPU (`cuda`: needs a
    /// build with `--features cuda`; compare with `bench_peer.py --device cuda`).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Print the one-line JSON record of the contract instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs `dbl bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(cfg) = BenchConfig::get(&args.config) else {
        let names: Vec<&str> = CONFIGS.iter().map(|c| c.name).collect();
        bail!(
            "--config {:?}: unknown configuration; expected one of: {}",
            args.config,
            names.join(", ")
        );
    };
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let (n_img, n_cap) = (
        args.images.unwrap_or(FULL_IMAGES),
        args.captions.unwrap_or(FULL_CAPTIONS),
    );
    if cfg.kind == Kind::Score && (n_img == 0 || n_cap == 0) {
        bail!("--images and --captions must be at least 1");
    }
    if args.head_precision == HeadPrecision::Bf16 {
        if cfg.name != "scan-score" {
            bail!(
                "--head-precision bf16 applies to scan-score only, not {}",
                cfg.name
            );
        }
        crate::engine::amx::require()?;
    }
    device::require(args.device)?;
    if args.device == Device::Cuda {
        if cfg.kind == Kind::Train {
            return Err(DeviceError::Unsupported("training (dbl bench --config *-train)").into());
        }
        if args.head_precision == HeadPrecision::Bf16 {
            bail!("--head-precision bf16 runs on Intel AMX; the GPU path is f32 only");
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("building the rayon pool")?;
    let pb = ProgressBar::new((args.warmup + args.reps) as u64);
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(cfg.name);
    let load_before = load_average();
    let mut seconds = Vec::with_capacity(args.reps);
    let mut cpu = Vec::with_capacity(args.reps);
    let mut phases: [Vec<f64>; 3] = Default::default();
    let mut gpu = serde_json::Value::Null;
    pool.install(|| -> anyhow::Result<()> {
        match cfg.kind {
            Kind::Train => {
                let mut b = TrainBench::new(cfg, args.seed)?;
                for rep in 0..args.warmup + args.reps {
                    let (c0, t0) = (cpu_seconds(), Instant::now());
                    let losses = b.step(Par::Rayon(0))?;
                    let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
                    if losses.iter().any(|l| !l.is_finite()) {
                        bail!("{}: non-finite loss {losses:?}", cfg.name);
                    }
                    if rep >= args.warmup {
                        seconds.push(dt);
                        cpu.push(dc);
                    }
                    pb.inc(1);
                }
            }
            Kind::Score => {
                let b = ScoreBench::new(cfg, n_img, n_cap, args.seed)?;
                let scorer = open_scorer(&b, args.device)?;
                for rep in 0..args.warmup + args.reps {
                    let (c0, t0) = (cpu_seconds(), Instant::now());
                    let p = score_rep(&b, scorer.as_ref(), args.head_precision)?;
                    let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
                    if rep >= args.warmup {
                        seconds.push(dt);
                        cpu.push(dc);
                        phases[0].push(p.encode_images);
                        phases[1].push(p.encode_captions);
                        phases[2].push(p.score);
                    }
                    pb.inc(1);
                }
                gpu = gpu_record(scorer.as_ref())?;
            }
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    let flop = flops::count(cfg, n_img, n_cap);
    let med = median(&seconds);
    let mut rec = json!({
        "config": cfg.name,
        "impl": "rust",
        "threads": args.threads,
        "reps": args.reps,
        "seconds": seconds,
        "median": med,
        "cpu_seconds": cpu,
        "peak_rss_kb": peak_rss_kb(),
        "flops": flop as u64,
        "version": env!("CARGO_PKG_VERSION"),
        "load_average": [load_before, measure::load_average()],
        "device": args.device,
    });
    if !gpu.is_null() {
        rec["gpu"] = gpu.clone();
    }
    if cfg.kind == Kind::Score {
        rec["images"] = json!(n_img);
        rec["precision"] = json!(args.head_precision);
        rec["captions"] = json!(n_cap);
        rec["phases"] = json!({
            "encode_images": median(&phases[0]),
            "encode_captions": median(&phases[1]),
            "score": median(&phases[2]),
        });
    }
    if args.json {
        println!("{rec}");
    } else {
        let on = match gpu.get("name") {
            Some(n) => format!(" on {}", n.as_str().unwrap_or("cuda")),
            None => String::new(),
        };
        println!(
            "{}{}{on} threads {}: median {med:.3} s over {} reps, {:.1} GFLOP/s, peak RSS {:.0} MiB",
            cfg.name,
            if args.head_precision == HeadPrecision::Bf16 {
                " (bf16 head)"
            } else {
                ""
            },
            args.threads,
            args.reps,
            flop as f64 / med / 1e9,
            peak_rss_kb() as f64 / 1024.0
        );
    }
    Ok(())
}

/// The GPU scorer of a scoring benchmark (feature `cuda`).
#[cfg(feature = "cuda")]
type Scorer = crate::model::cuda::CudaScorer;
/// Without the feature there is no scorer ([`device::require`] refused `cuda`).
#[cfg(not(feature = "cuda"))]
type Scorer = std::convert::Infallible;

/// Opens the GPU scorer when `device` is `cuda` (before any timing: weights
/// uploaded, kernels compiled).
fn open_scorer(b: &ScoreBench, device: Device) -> Result<Option<Scorer>, BenchError> {
    match device {
        Device::Cpu => Ok(None),
        #[cfg(feature = "cuda")]
        Device::Cuda => Ok(Some(b.cuda_scorer()?)),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => {
            let _ = b;
            unreachable!("device::require refuses cuda without the feature")
        }
    }
}

/// One scoring repetition on the CPU, or on the GPU with `scorer`.
fn score_rep(
    b: &ScoreBench,
    scorer: Option<&Scorer>,
    precision: HeadPrecision,
) -> Result<Phases, BenchError> {
    match scorer {
        None => b.run(precision).map(|(_, p)| p),
        #[cfg(feature = "cuda")]
        Some(s) => b.run_cuda(s).map(|(_, p)| p),
        #[cfg(not(feature = "cuda"))]
        Some(never) => match *never {},
    }
}

/// The record's `gpu` object: device name, NVRTC target and the peak device
/// memory in use (bytes, `cuMemGetInfo`: this process's allocations plus
/// the context), or null on the CPU.
fn gpu_record(scorer: Option<&Scorer>) -> Result<serde_json::Value, BenchError> {
    Ok(match scorer {
        None => serde_json::Value::Null,
        #[cfg(feature = "cuda")]
        Some(s) => json!({
            "name": s.gpu().name(),
            "arch": s.gpu().arch(),
            "peak_device_mem_bytes": s.gpu().peak_memory(),
        }),
        #[cfg(not(feature = "cuda"))]
        Some(never) => match *never {},
    })
}
