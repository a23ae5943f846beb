//! A placement or eviction plugin of either `porten:policy` version: 0.1.0's instance alone, or
//! 0.2.0's with the names it has been given (see [`Names`]).

use std::sync::Mutex;

use crate::instance::Instance;
use crate::names::Names;

/// The instance of a 0.1.0 (`A`) or 0.2.0 (`B`) component whose names are `K`s.
pub(crate) enum Versioned<A, B, K> {
    V0_1(Instance<A>),
    V0_2 {
        instance: Instance<B>,
        /// Everything named to the plugin, by the index it knows it by.
        names: Mutex<Names<K>>,
    },
}

impl<A, B, K> Versioned<A, B, K> {
    pub fn v0_2(instance: Instance<B>) -> Self {
        Self::V0_2 {
            instance,
            names: Mutex::new(Names::default()),
        }
    }

    /// `0.1.0` or `0.2.0`.
    pub fn version(&self) -> &'static str {
        match self {
            Self::V0_1(_) => "0.1.0",
            Self::V0_2 { .. } => "0.2.0",
        }
    }

    /// One decision, by whichever version the plugin is.
    pub fn decide<R>(
        &self,
        v0_1: impl FnOnce(&Instance<A>) -> R,
        v0_2: impl FnOnce(&Instance<B>, &mut Names<K>) -> R,
    ) -> R {
        match self {
            Self::V0_1(instance) => v0_1(instance),
            Self::V0_2 { instance, names } => {
                let mut names = names.lock().unwrap_or_else(|p| p.into_inner());
                v0_2(instance, &mut names)
            }
        }
    }
}
