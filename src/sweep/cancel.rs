//! Cooperative cancellation of long runs and sweeps, for front ends that run them on a worker thread (the Python
//! bindings stop a sweep on Ctrl-C this way; the CLI never sets a flag and is unaffected).
//!
//! A caller runs the work inside [`with_flag`] on the thread that does it; the sweep loop calls [`check`] before
//! every grid point, and stops with [`SweepError::Cancelled`] once the flag is set. Work finished before that
//! (units already recorded in a sweep's state file) is kept, so a cancelled sweep resumes like a killed one.
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::SweepError;

thread_local! {
    static FLAG: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread with `flag` as its cancellation flag (restoring the previous one afterwards, also when
/// `f` panics).
pub fn with_flag<T>(flag: Arc<AtomicBool>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            FLAG.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = FLAG.with(|c| c.borrow_mut().replace(flag));
    let _restore = Restore(prev);
    f()
}

/// `Err(SweepError::Cancelled)` when this thread's flag (see [`with_flag`]) is set; `Ok` otherwise, and always
/// when no flag is installed.
pub fn check() -> Result<(), SweepError> {
    let cancelled = FLAG.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    });
    if cancelled {
        Err(SweepError::Cancelled)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_is_per_thread_and_scoped() {
        assert!(check().is_ok(), "no flag installed");
        let flag = Arc::new(AtomicBool::new(false));
        with_flag(flag.clone(), || {
            assert!(check().is_ok());
            flag.store(true, Ordering::Relaxed);
            assert!(matches!(check(), Err(SweepError::Cancelled)));
            // Another thread does not see this thread's flag.
            std::thread::spawn(|| assert!(check().is_ok()))
                .join()
                .unwrap();
        });
        assert!(check().is_ok(), "flag removed after the scope");
    }

    #[test]
    fn nested_scopes_restore_the_outer_flag() {
        let outer = Arc::new(AtomicBool::new(true));
        let inner = Arc::new(AtomicBool::new(false));
        with_flag(outer, || {
            assert!(check().is_err());
            with_flag(inner, || assert!(check().is_ok()));
            assert!(check().is_err(), "outer flag back in force");
        });
    }
}
