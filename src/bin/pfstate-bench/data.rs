//! The data plane: new TCP connections per second through the gateway namespace, with one
//! forward, N forwards as pfstate lays them out, and N forwards in linear chains.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pfstate::lab::{GatewayOptions, Netns, Topology};

use crate::control::{row, verdict};
use crate::util::*;
use crate::{INTERRUPTED, interrupted};

/// A server in a namespace that accepts and closes, until dropped.
pub(crate) struct Acceptor {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
}

impl Acceptor {
    pub(crate) fn start(ns: &Netns, port: u16) -> Result<Acceptor, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let path = ns.path();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let entered = File::open(&path).map_err(|e| e.to_string()).and_then(|f| {
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = entered {
                let _ = tx.send(Err(e));
                return;
            }
            let l = match TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = l.set_nonblocking(true);
            // A deep accept queue: a busy machine may not run this thread for a while, and a
            // full queue drops SYNs (a 1 s retransmit, counted as a failure).
            // SAFETY: listen() again on our own listening socket only resizes its backlog.
            unsafe { nix::libc::listen(l.as_raw_fd(), 4096) };
            let _ = tx.send(Ok(()));
            let fd = l.as_raw_fd();
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => drop(s),
                    Err(_) => {
                        let mut p = nix::libc::pollfd {
                            fd,
                            events: nix::libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd.
                        unsafe { nix::libc::poll(&mut p, 1, 100) };
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Acceptor {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("server did not start".into()),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sequential connect/close from `ns` to `dst` for `secs`: (connections per second, failures).
pub(crate) fn connect_rate(ns: &Netns, dst: SocketAddr, secs: f64) -> Result<(f64, usize), String> {
    ns.run_in(move || {
        let start = Instant::now();
        let limit = Duration::from_secs_f64(secs);
        let (mut ok, mut failed) = (0usize, 0usize);
        // Bounded in time and in count.
        while start.elapsed() < limit && ok + failed < 2_000_000 {
            match TcpStream::connect_timeout(&dst, Duration::from_millis(500)) {
                Ok(s) => {
                    // RST on close: no TIME_WAIT on the client, so ports are not exhausted.
                    let l = nix::libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    // SAFETY: a valid socket and a properly sized option value.
                    unsafe {
                        nix::libc::setsockopt(
                            s.as_raw_fd(),
                            nix::libc::SOL_SOCKET,
                            nix::libc::SO_LINGER,
                            (&l as *const nix::libc::linger).cast(),
                            std::mem::size_of::<nix::libc::linger>() as nix::libc::socklen_t,
                        )
                    };
                    ok += 1;
                }
                Err(_) => failed += 1,
            }
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
        }
        (ok as f64 / start.elapsed().as_secs_f64(), failed)
    })
    .map_err(|e| e.to_string())
}

pub(crate) fn linear_payload(n: usize, last: &str) -> Result<String, String> {
    let model = pfstate::spec::load_str("linear.yaml", &state_yaml(n, Some(last), None))
        .map_err(|e| e.to_string())?;
    let desired = pfstate::render::render_linear(&model);
    let rs = desired.ruleset(pfstate::model::Family::V4);
    let plan = pfstate::plan::plan_family(&desired.prefix, rs, &Default::default());
    Ok(plan.payload())
}

pub(crate) struct DataFigures {
    pub(crate) single: Series,
    pub(crate) tree: Series,
    pub(crate) linear: Series,
    pub(crate) failures: usize,
}

// Over 60 lines on purpose: one measurement protocol (build the lab, then per run and layout:
// load, warm up, measure, check), kept in one place so the three layouts are measured alike.
pub(crate) fn data_plane(
    pfstate: &Path,
    n: usize,
    runs: usize,
    secs: f64,
) -> Result<DataFigures, String> {
    let files = TempDir::new("dp")?;
    let target_port = FIRST_PORT + n - 1;
    let be = format!("{}:{}", Topology::BE1, 8080);
    let many = files.path().join("many.yaml");
    let one = files.path().join("one.yaml");
    std::fs::write(&many, state_yaml(n, Some(&be), None)).map_err(|e| e.to_string())?;
    std::fs::write(&one, single_yaml(target_port, &be)).map_err(|e| e.to_string())?;
    let linear = files.path().join("linear.rules");
    std::fs::write(&linear, linear_payload(n, &be)?).map_err(|e| e.to_string())?;

    let topo = Topology::gateway(GatewayOptions {
        servers: false,
        ..GatewayOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let gw = topo.gw();
    gw.set_sysctls(&[("net.ipv4.ip_forward", "1")])
        .map_err(|e| e.to_string())?;
    topo.client()
        .set_sysctls(&[("net.ipv4.ip_local_port_range", "1024 65000")])
        .map_err(|e| e.to_string())?;
    let backend = topo.host("be1").ok_or("no be1")?;
    let _server = Acceptor::start(backend, 8080)?;
    let dst = SocketAddr::from((Topology::GW_WAN, target_port as u16));
    let shim = Shim::new()?;
    let reset = files.path().join("reset.rules");
    // FORWARD policy DROP (as Docker sets it): only the accepts let the connections through.
    std::fs::write(
        &reset,
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
    )
    .map_err(|e| e.to_string())?;
    let mut fig = DataFigures {
        single: Series::default(),
        tree: Series::default(),
        linear: Series::default(),
        failures: 0,
    };
    for run in 0..runs {
        for layout in ["single", "tree", "linear"] {
            interrupted()?;
            // Start from an empty ruleset (flushes every chain of the gateway) and no flows.
            let mut c = Command::new("ip");
            c.args(["netns", "exec", gw.name(), "iptables-restore"]);
            if !run_timed(c, Some(&reset))?.ok {
                return Err("reset of the gateway failed".into());
            }
            let _ = gw.exec_output("conntrack", &["-F"]);
            let root = TempDir::new("dproot")?;
            let r = root.path().to_str().expect("utf-8");
            let loaded = match layout {
                "single" => run_timed(
                    in_ns(
                        gw,
                        &shim,
                        pfstate,
                        &["--root", r, "apply", one.to_str().expect("utf-8")],
                    ),
                    None,
                )?,
                "tree" => run_timed(
                    in_ns(
                        gw,
                        &shim,
                        pfstate,
                        &["--root", r, "apply", many.to_str().expect("utf-8")],
                    ),
                    None,
                )?,
                _ => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", gw.name(), "iptables-restore", "--noflush"]);
                    run_timed(c, Some(&linear))?
                }
            };
            if !loaded.ok {
                return Err(format!("loading the {layout} layout failed"));
            }
            let (rate, failed) = connect_rate(topo.client(), dst, secs)?;
            fig.failures += failed;
            eprintln!(
                "  data plane run {}/{runs}, {layout}: {rate:.0} conn/s{}",
                run + 1,
                if failed > 0 {
                    format!(" ({failed} failed)")
                } else {
                    String::new()
                }
            );
            match layout {
                "single" => fig.single.push(rate),
                "tree" => fig.tree.push(rate),
                _ => fig.linear.push(rate),
            }
        }
    }
    Ok(fig)
}

pub(crate) fn report_data(out: &mut String, n: usize, d: &DataFigures) {
    let base = d.single.median();
    let tree = d.tree.median() / base;
    let lin = d.linear.median() / base;
    row(
        out,
        &format!("new TCP conn/s, {n} forwards (pfstate)"),
        &d.tree.show(1.0, "", 0),
        &format!("1 forward {}", d.single.show(1.0, "", 0)),
        &format!("{tree:.2}x"),
        &format!(">= 0.8x {}", verdict(tree >= 0.8)),
    );
    row(
        out,
        &format!("new TCP conn/s, {n} forwards, linear chains"),
        &d.linear.show(1.0, "", 0),
        &format!("1 forward {}", d.single.show(1.0, "", 0)),
        &format!("{lin:.2}x"),
        "(for comparison)",
    );
    if d.failures > 0 {
        let _ = writeln!(out, "{:<44} {} connection attempts failed", "", d.failures);
    }
}
