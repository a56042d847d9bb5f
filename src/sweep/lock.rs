//! Advisory locks on a sweep's output folder, held for the whole run (docs/run-and-sweep.md, docs/scale-out.md).
//!
//! Every process writing into a folder (a whole sweep, one shard, a merge) holds an exclusive `flock` on its
//! own lock file `.lock.<role>` in the folder (`role` = `sweep` for a whole sweep and for a merge, both of which
//! write `sweep-state.json`/the report; `shard-K-of-N` for a shard). The file holds the holder's pid, host,
//! role and configuration fingerprint. Acquiring happens under a short exclusive lock on `.accelsim.lock`, so
//! two starters never race, and consists of:
//! 1. every other `.lock.*` file is probed with a non-blocking shared lock: if the probe succeeds the holder is
//!    dead (the kernel drops `flock`s of killed processes) and the file is removed; otherwise the holder is
//!    alive and is refused against: a **different configuration** (another fingerprint) or the **same role**
//!    is a one-line error naming the folder and the holder's pid and host ([`SweepError::Busy`]); shards of
//!    the same sweep (same fingerprint, other roles) share the folder;
//! 2. stale temporary files of killed atomic writes ([`crate::fsutil::write_atomic`] names them
//!    `.NAME.tmpPID`) are removed: all of them when no other process holds the folder, else those of the files
//!    this process owns;
//! 3. the own lock file is written and locked.
//!
//! The lock is released (and its file removed) when the [`FolderLock`] is dropped, and by the kernel when the
//! process dies. `flock` works on local file systems and on NFS (Linux emulates it with POSIX locks); on
//! Lustre it needs the `flock` mount option.
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::SweepError;

/// The guard file serialising lock acquisition in a folder (left in place; never holds data).
pub const GUARD_FILE: &str = ".accelsim.lock";
const LOCK_PREFIX: &str = ".lock.";

/// Who holds (or held) a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub role: String,
    pub fingerprint: String,
}

impl Holder {
    fn me(role: &str, fingerprint: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
            role: role.to_string(),
            fingerprint: fingerprint.to_string(),
        }
    }

    fn to_text(&self) -> String {
        format!(
            "pid={}\nhost={}\nrole={}\nfingerprint={}\n",
            self.pid, self.host, self.role, self.fingerprint
        )
    }

    fn parse(text: &str) -> Holder {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                .unwrap_or("?")
                .to_string()
        };
        Holder {
            pid: field("pid").parse().unwrap_or(0),
            host: field("host"),
            role: field("role"),
            fingerprint: field("fingerprint"),
        }
    }
}

/// This machine's host name (for messages about holders on other cluster nodes).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An exclusive lock of one role on a folder; released on drop.
#[derive(Debug)]
pub struct FolderLock {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    /// Stale temporary files removed when the lock was taken.
    pub removed_temporaries: usize,
}

/// The guard lock, held while the lock files are scanned and created.
fn guard(dir: &Path) -> Result<File, SweepError> {
    let p = dir.join(GUARD_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io(&p))?;
    f.lock().map_err(io(&p))?;
    Ok(f)
}

/// The live holders of lock files in `dir` (stale lock files are removed on the way). Call under the guard.
fn live_holders(dir: &Path) -> Result<Vec<Holder>, SweepError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(LOCK_PREFIX) {
            continue;
        }
        let p = e.path();
        let Ok(mut f) = File::open(&p) else { continue };
        match f.try_lock_shared() {
            Ok(()) => {
                // Nobody holds it: the holder died. Remove the file (no one can lock it meanwhile: we hold
                // the guard, and every locker takes the guard first).
                let _ = f.unlock();
                let _ = std::fs::remove_file(&p);
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = f.read_to_string(&mut text);
                out.push(Holder::parse(&text));
            }
            Err(TryLockError::Error(source)) => return Err(SweepError::Io { path: p, source }),
        }
    }
    Ok(out)
}

/// Whether `name` is a temporary file of [`crate::fsutil::write_atomic`] (`.NAME.tmpPID`); returns NAME.
fn temporary_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    let i = rest.rfind(".tmp")?;
    let pid = &rest[i + 4..];
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && i > 0).then(|| &rest[..i])
}

impl FolderLock {
    /// Takes the lock of `role` on `dir` for a sweep with `fingerprint` (see the module docs). `own_files`:
    /// the files in `dir` this role writes (their stale temporaries are removed even while other processes
    /// hold the folder).
    pub fn acquire(
        dir: &Path,
        role: &str,
        fingerprint: &str,
        own_files: &[String],
    ) -> Result<FolderLock, SweepError> {
        let g = guard(dir)?;
        let holders = live_holders(dir)?;
        let busy = |h: &Holder, what: &str| {
            SweepError::Busy {
            path: dir.to_path_buf(),
            msg: format!(
                "{what} (pid {} on host {}, `{}`); wait for it to finish, stop it, or choose another --out",
                h.pid, h.host, h.role
            ),
        }
        };
        if let Some(h) = holders.iter().find(|h| h.fingerprint != fingerprint) {
            return Err(busy(
                h,
                "in use by a running sweep with a different configuration",
            ));
        }
        if let Some(h) = holders.iter().find(|h| h.role == role) {
            return Err(busy(
                h,
                "in use by a running process of this sweep writing the same files",
            ));
        }
        let mut removed = 0;
        for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = temporary_of(&name)
                .is_some_and(|t| holders.is_empty() || own_files.iter().any(|f| f == t));
            if stale && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        let path = dir.join(format!("{LOCK_PREFIX}{role}"));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(Holder::me(role, fingerprint).to_text().as_bytes())
            .and_then(|_| f.flush())
            .map_err(io(&path))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(SweepError::Busy {
                    path: dir.to_path_buf(),
                    msg: format!("{} is locked by another process", path.display()),
                })
            }
            Err(TryLockError::Error(source)) => return Err(SweepError::Io { path, source }),
        }
        drop(g);
        Ok(FolderLock {
            dir: dir.to_path_buf(),
            path,
            file: Some(f),
            removed_temporaries: removed,
        })
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Remove the file under the guard so that no starter opens it between removal and unlock.
        let g = guard(&self.dir);
        let _ = std::fs::remove_file(&self.path);
        drop(self.file.take());
        drop(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_role_or_other_config_is_refused_shards_share() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = FolderLock::acquire(d, "sweep", "fp1", &[]).unwrap();
        let e = FolderLock::acquire(d, "sweep", "fp1", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("pid {}", std::process::id()))
                && e.contains(&d.display().to_string()),
            "{e}"
        );
        let e = FolderLock::acquire(d, "shard-0-of-2", "fp2", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("different configuration"), "{e}");
        let s0 = FolderLock::acquire(d, "shard-0-of-2", "fp1", &[]).unwrap();
        let s1 = FolderLock::acquire(d, "shard-1-of-2", "fp1", &[]).unwrap();
        drop((a, s0, s1));
        // Released: another configuration may take the folder now; no lock files are left behind.
        let b = FolderLock::acquire(d, "sweep", "fp2", &[]).unwrap();
        drop(b);
        let names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![GUARD_FILE.to_string()]);
    }

    #[test]
    fn stale_lock_files_and_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A killed holder leaves its lock file (unlocked) and a half-written temporary.
        std::fs::write(
            d.join(".lock.sweep"),
            "pid=1\nhost=x\nrole=sweep\nfingerprint=old\n",
        )
        .unwrap();
        std::fs::write(d.join(".sweep.csv.tmp4242"), "half").unwrap();
        std::fs::write(d.join(".keep.tmpx"), "not ours").unwrap();
        let l = FolderLock::acquire(d, "sweep", "new", &[]).unwrap();
        assert_eq!(l.removed_temporaries, 1);
        assert!(!d.join(".sweep.csv.tmp4242").exists());
        assert!(d.join(".keep.tmpx").exists());
        // While a holder is alive, only the temporaries of one's own files go.
        std::fs::write(d.join(".a.json.tmp1"), "").unwrap();
        std::fs::write(d.join(".b.json.tmp2"), "").unwrap();
        let s = FolderLock::acquire(d, "shard-0-of-2", "new", &["a.json".into()]).unwrap();
        assert!(!d.join(".a.json.tmp1").exists() && d.join(".b.json.tmp2").exists());
        drop((l, s));
    }

    #[test]
    fn temporary_names() {
        assert_eq!(temporary_of(".sweep.csv.tmp123"), Some("sweep.csv"));
        assert_eq!(
            temporary_of(".sweep-state.json.tmp9"),
            Some("sweep-state.json")
        );
        assert_eq!(temporary_of(".x.tmp"), None);
        assert_eq!(temporary_of("sweep.csv.tmp1"), None);
        assert_eq!(temporary_of(".tmp1"), None);
        assert_eq!(temporary_of(".lock.sweep"), None);
    }
}
