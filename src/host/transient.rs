//! A transient timer and service in systemd (StartTransientUnit over D-Bus): runs a command at
//! a deadline in the system manager, outside the caller's session, so it runs even when the
//! SSH connection that started it is gone. Used for the revert of `apply --confirm`.

use zbus::OwnedObjectPath;
use zbus::Variant as Value;

use crate::error::HostError;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Transient {
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
}

/// How late the timer may fire: systemd's default accuracy is a minute.
const ACCURACY_USEC: u64 = 100_000;

fn err(e: zbus::Error) -> HostError {
    HostError::Systemd(e.to_string())
}

/// Start `STEM.timer`, elapsing `seconds` from now, which starts the oneshot `STEM.service`
/// running `argv`. Both are transient: gone after they ran, and after a reboot.
pub fn start_timer(
    conn: &zbus::Connection,
    stem: &str,
    seconds: u64,
    argv: &[String],
    description: &str,
) -> Result<String, HostError> {
    let timer = format!("{stem}.timer");
    let service = format!("{stem}.service");
    let usec = seconds.saturating_mul(1_000_000);
    // A `Value` holds its array items by value: (path, argv, ignore-failure).
    let exec = vec![(argv[0].clone(), argv.to_vec(), false)];
    zbus::block_on(async {
        let m = TransientProxy::new(conn).await?;
        let timer_props = [
            ("Description", Value::from(description)),
            // The timer's base: systemd 252 takes "OnActiveSec" (in microseconds) here.
            ("TimersMonotonic", Value::from(vec![("OnActiveSec", usec)])),
            ("AccuracyUSec", Value::from(ACCURACY_USEC)),
            ("RemainAfterElapse", Value::from(false)),
        ];
        let service_props = [
            ("Description", Value::from(description)),
            ("Type", Value::from("oneshot")),
            ("ExecStart", Value::from(exec)),
        ];
        m.start_transient_unit(&timer, "fail", &timer_props, &[(&service, &service_props)])
            .await
    })
    .map_err(err)?;
    Ok(timer)
}

/// Stop the timer (its service never starts). A timer already gone is not an error.
pub fn stop_timer(conn: &zbus::Connection, timer: &str) -> Result<(), HostError> {
    let result = zbus::block_on(async {
        let m = TransientProxy::new(conn).await?;
        m.stop_unit(timer, "replace").await
    });
    match result {
        Ok(_) => Ok(()),
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with(".NoSuchUnit") => {
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}
