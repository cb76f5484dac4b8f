//! The real [`ServiceManager`]: systemd over D-Bus (the offline one for `--root` is in
//! `systemd_offline.rs`).
//!
//! D-Bus rather than `systemctl`: typed replies and errors instead of parsing output and exit
//! codes, and one connection for reload + enable. zbus 6 has no blocking API, so the few
//! methods pfstate needs are declared as async `#[zbus::proxy]` traits and each call runs inside
//! `zbus::block_on` (zbus's own runtime, no tokio). The connection is kept between calls; zbus
//! drives it from a helper thread while no `block_on` is running.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use zbus::export::futures_core::Stream;
use zbus::{Connection, OwnedObjectPath};

use crate::error::HostError;
use crate::host::ServiceManager;

/// Also reachable here, next to its D-Bus sibling.
pub use super::systemd_offline::OfflineServiceManager;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn reload(&self) -> zbus::Result<()>;
    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<(String, String, String)>)>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn get_unit_file_state(&self, file: &str) -> zbus::Result<String>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn subscribe(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: zbus::ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    assume_defaults = false
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
}

/// How long a single D-Bus call may take (a daemon-reload on a big host takes a few seconds).
const METHOD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`DbusServiceManager::restart`] waits for the job by default. A `Type=oneshot`
/// unit has no start timeout of its own.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// systemd's service manager, over the system bus.
pub struct DbusServiceManager {
    conn: Connection,
    address: String,
    job_timeout: Duration,
}

fn systemd_err(e: zbus::Error) -> HostError {
    match e {
        zbus::Error::MethodError(name, desc, _) => {
            HostError::Systemd(format!("{name}: {}", desc.unwrap_or_default()))
        }
        e => HostError::Systemd(e.to_string()),
    }
}

/// Whether a D-Bus error says "no such unit file" (then a unit is simply not enabled).
fn is_not_found(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::FDO(f) => matches!(**f, zbus::fdo::Error::FileNotFound(_)),
        zbus::Error::MethodError(name, _, _) => {
            let n = name.as_str();
            // systemd 252 answers GetUnitFileState for a missing file with System.Error.ENOENT.
            n.ends_with(".NoSuchUnit") || n.ends_with(".FileNotFound") || n.ends_with(".ENOENT")
        }
        _ => false,
    }
}

impl DbusServiceManager {
    /// Connect to the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else
    /// `/var/run/dbus/system_bus_socket`). No bus, or no systemd on it, is
    /// [`HostError::NoSystemBus`], whose message points at `--root`.
    pub fn system() -> Result<Self, HostError> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".to_string());
        Self::connect(zbus::conn::Builder::system(), address)
    }

    /// Connect to an explicit bus address (tests: `unix:path=/proc/PID/root/run/dbus/...`).
    pub fn at_address(address: &str) -> Result<Self, HostError> {
        Self::connect(zbus::conn::Builder::address(address), address.to_string())
    }

    fn connect(builder: zbus::conn::Builder, address: String) -> Result<Self, HostError> {
        let conn = zbus::block_on(async {
            let conn = builder.method_timeout(METHOD_TIMEOUT).build().await?;
            // Fail here, with NoSystemBus, when a bus exists but systemd is not on it
            // (a container whose PID 1 is not systemd).
            let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
            let name = zbus::names::BusName::try_from("org.freedesktop.systemd1")?;
            if !dbus.name_has_owner(name).await? {
                return Err(zbus::Error::Failure(
                    "org.freedesktop.systemd1 is not on the bus (systemd is not running)".into(),
                ));
            }
            Ok::<_, zbus::Error>(conn)
        })
        .map_err(|e| HostError::NoSystemBus(format!("{address}: {e}")))?;
        Ok(DbusServiceManager {
            conn,
            address,
            job_timeout: DEFAULT_JOB_TIMEOUT,
        })
    }

    /// Change how long [`restart`](ServiceManager::restart) waits for its job.
    pub fn with_job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// The bus address this manager talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The connection, for calls of other interfaces ([`super::transient`]).
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    fn call<T>(
        &self,
        f: impl AsyncFnOnce(ManagerProxy<'_>) -> zbus::Result<T>,
    ) -> Result<T, HostError> {
        zbus::block_on(async {
            let m = ManagerProxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            f(m).await
        })
        .map_err(systemd_err)
    }
}

impl ServiceManager for DbusServiceManager {
    fn reload(&self) -> Result<(), HostError> {
        // systemd replies once the reload has finished.
        self.call(async |m| m.reload().await)
    }

    /// `EnableUnitFiles`, then a reload when a symlink was created, as `systemctl enable` does,
    /// so the running manager sees the new `WantedBy=` dependency. Call [`reload`] first after
    /// writing or changing the unit file itself.
    ///
    /// [`reload`]: ServiceManager::reload
    fn enable(&self, unit: &str) -> Result<(), HostError> {
        let (has_install, changes) =
            self.call(async |m| m.enable_unit_files(&[unit], false, false).await)?;
        if !has_install {
            return Err(HostError::Systemd(format!(
                "{unit} has no [Install] section, nothing to enable"
            )));
        }
        if !changes.is_empty() {
            self.reload()?;
        }
        Ok(())
    }

    fn disable(&self, unit: &str) -> Result<(), HostError> {
        let changes = self.call(async |m| m.disable_unit_files(&[unit], false).await)?;
        if !changes.is_empty() {
            self.reload()?;
        }
        Ok(())
    }

    /// `enabled` or `enabled-runtime` (its `[Install]` symlinks exist); a missing unit file is
    /// not enabled.
    /// Queue a start job and return at once; see [`ServiceManager::start_no_wait`].
    fn start_no_wait(&self, unit: &str) -> Result<(), HostError> {
        self.call(async |m| m.start_unit(unit, "replace").await)
            .map(|_| ())
    }

    fn is_enabled(&self, unit: &str) -> Result<bool, HostError> {
        let state = zbus::block_on(async {
            let m = ManagerProxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            m.get_unit_file_state(unit).await
        });
        match state {
            Ok(s) => Ok(s == "enabled" || s == "enabled-runtime"),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(systemd_err(e)),
        }
    }

    /// `RestartUnit(unit, "replace")` and wait for the job (`JobRemoved`) to finish; a result
    /// other than `done` (a failed `pfstate apply --boot`) is an error.
    fn restart(&self, unit: &str) -> Result<(), HostError> {
        let timeout = self.job_timeout;
        let result = zbus::block_on(async {
            let m = ManagerProxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            m.subscribe().await?;
            // The stream must exist before the job does, or a fast job's signal is missed.
            let mut removed = m.receive_job_removed().await?;
            let job = m.restart_unit(unit, "replace").await?;
            let wait = async {
                loop {
                    let Some(sig) = next(&mut removed).await else {
                        return Err(zbus::Error::Failure("bus connection closed".into()));
                    };
                    let args = sig.args()?;
                    if args.job().as_str() == job.as_str() {
                        return Ok(Some(args.result().to_string()));
                    }
                }
            };
            match with_deadline(wait, timeout).await {
                Some(r) => r,
                None => Ok(None),
            }
        })
        .map_err(systemd_err)?;
        match result {
            Some(r) if r == "done" => Ok(()),
            Some(r) => Err(HostError::Systemd(format!(
                "{unit}: restart job finished with result '{r}' (see journalctl -u {unit})"
            ))),
            None => Err(HostError::Systemd(format!(
                "{unit}: restart job still running after {} s",
                timeout.as_secs()
            ))),
        }
    }

    fn start_timer(
        &self,
        stem: &str,
        seconds: u64,
        argv: &[String],
        description: &str,
    ) -> Result<String, HostError> {
        super::transient::start_timer(self.connection(), stem, seconds, argv, description)
    }

    fn stop_timer(&self, timer: &str) -> Result<(), HostError> {
        super::transient::stop_timer(self.connection(), timer)
    }

    /// The unit's `ActiveState` (`active`, `inactive`, `failed`, `activating`, ...).
    fn active_state(&self, unit: &str) -> Result<String, HostError> {
        zbus::block_on(async {
            let m = ManagerProxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            // LoadUnit, not GetUnit: GetUnit fails for a unit that is not loaded.
            let path = m.load_unit(unit).await?;
            let u = UnitProxy::builder(&self.conn)
                .path(path)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            u.active_state().await
        })
        .map_err(systemd_err)
    }
}

/// The next item of a stream (what `StreamExt::next` does, without a futures-util dependency).
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// Run `fut`, giving up (`None`) after `timeout`. zbus 6 exposes no timer, so a plain thread
/// sleeps and wakes the task.
async fn with_deadline<F: Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    struct State {
        expired: bool,
        waker: Option<Waker>,
    }
    let state = Arc::new(Mutex::new(State {
        expired: false,
        waker: None,
    }));
    let timer_state = Arc::clone(&state);
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        let mut s = timer_state.lock().unwrap_or_else(|p| p.into_inner());
        s.expired = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    });
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.expired {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bus_is_a_typed_error() {
        let err = match DbusServiceManager::at_address("unix:path=/nonexistent/pfstate-test-bus") {
            Err(e) => e,
            Ok(_) => panic!("connected to a nonexistent bus"),
        };
        assert!(matches!(err, HostError::NoSystemBus(_)), "{err}");
        assert!(err.to_string().contains("--root"), "{err}");
    }

    #[test]
    fn deadline_expires() {
        let r = zbus::block_on(with_deadline(
            std::future::pending::<()>(),
            Duration::from_millis(50),
        ));
        assert_eq!(r, None);
        let r = zbus::block_on(with_deadline(async { 7 }, Duration::from_secs(5)));
        assert_eq!(r, Some(7));
    }
}
