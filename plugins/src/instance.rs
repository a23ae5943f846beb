//! One live instance of a plugin, made from its `InstancePre` on first use and after every
//! failure, and the call wrapper that puts each decision under the deadline and the memory limit
//! and turns what went wrong into a cause the metrics can carry.

use std::sync::Mutex;

use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};

use crate::PluginEngine;

/// What a store carries for the host: only the limits (plugins import nothing).
pub(crate) struct HostState {
    limits: StoreLimits,
}

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallFailure {
    /// `timeout`, `memory`, `trap`, `instantiate` or `invalid_answer`.
    pub cause: &'static str,
    /// For the log.
    pub detail: String,
}

type Instantiate<T> = dyn Fn(&mut Store<HostState>) -> wasmtime::Result<T> + Send + Sync;

/// A plugin's current instance, if it has one.
pub(crate) struct Instance<T> {
    engine: PluginEngine,
    instantiate: Box<Instantiate<T>>,
    current: Mutex<Option<(Store<HostState>, T)>>,
}

impl<T> Instance<T> {
    pub fn new(
        engine: PluginEngine,
        instantiate: impl Fn(&mut Store<HostState>) -> wasmtime::Result<T> + Send + Sync + 'static,
    ) -> Self {
        Self {
            engine,
            instantiate: Box::new(instantiate),
            current: Mutex::new(None),
        }
    }

    /// Runs `call` on the instance under the deadline. After any failure the instance is
    /// dropped, so a trapped or half-finished guest never answers again.
    pub fn call<R>(
        &self,
        call: impl FnOnce(&mut Store<HostState>, &T) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none() {
            let mut store = Store::new(
                &self.engine.engine,
                HostState {
                    limits: StoreLimitsBuilder::new()
                        .memory_size(self.engine.limits.memory_bytes)
                        .trap_on_grow_failure(true)
                        .build(),
                },
            );
            store.limiter(|state| &mut state.limits);
            store.set_epoch_deadline(self.engine.deadline_ticks());
            let instance =
                (self.instantiate)(&mut store).map_err(|e| classify(e, "instantiate"))?;
            *current = Some((store, instance));
        }
        let (store, instance) = current.as_mut().expect("made above");
        store.set_epoch_deadline(self.engine.deadline_ticks());
        match call(store, instance) {
            Ok(answer) => Ok(answer),
            Err(e) => {
                *current = None;
                Err(classify(e, "trap"))
            }
        }
    }
}

/// Names what went wrong: the deadline, the memory limit, or another trap.
fn classify(error: wasmtime::Error, otherwise: &'static str) -> CallFailure {
    let detail = format!("{error:#}");
    let cause = match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "timeout",
        _ if detail.contains("memory") && detail.contains("grow") => "memory",
        _ => otherwise,
    };
    CallFailure { cause, detail }
}
