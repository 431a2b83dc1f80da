//! Loaded models shared by every index of a process (`dbl serve --index A=…
//! --index B=…` built from one run loads it once).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::ServeError;
use super::manifest::ModelRef;
use crate::infer::LoadedMatcher;

/// A cache of loaded matchers keyed by (run, branch, tag).
#[derive(Debug, Default)]
pub struct Models {
    loaded: Mutex<HashMap<(PathBuf, usize, String), Arc<LoadedMatcher>>>,
}

impl Models {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model `r` names, loaded on first use; errors when its weights no
    /// longer hash to `r.weight_hash` (`index` names the index for the message).
    pub fn get(
        &self,
        r: &ModelRef,
        index: &std::path::Path,
    ) -> Result<Arc<LoadedMatcher>, ServeError> {
        let key = (r.run.clone(), r.branch, r.tag.clone());
        let mut map = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let m = match map.get(&key) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(LoadedMatcher::from_run(&r.run, Some(r.branch), &r.tag)?);
                map.insert(key, m.clone());
                m
            }
        };
        if m.weight_hash() != r.weight_hash {
            return Err(ServeError::OtherModel {
                index: index.to_path_buf(),
                built: r.weight_hash.clone(),
                weights: m.weights_path().to_path_buf(),
                now: m.weight_hash().to_string(),
            });
        }
        Ok(m)
    }

    /// How many distinct models are loaded.
    pub fn len(&self) -> usize {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when none is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
