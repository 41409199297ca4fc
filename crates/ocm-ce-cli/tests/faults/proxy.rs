//! A TCP proxy on a free loopback port that can go silent (keep every connection open but
//! forward nothing, like a dead path through a middlebox) or cut every connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The proxy; stops accepting when dropped (open connections are cut).
pub struct Proxy {
    pub addr: SocketAddr,
    silent: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards a new free loopback port to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (silent, conns, stop) = (silent.clone(), conns.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            client.set_nonblocking(false).unwrap();
                            let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                                continue;
                            };
                            {
                                let mut all = conns.lock().unwrap();
                                all.push(client.try_clone().unwrap());
                                all.push(server.try_clone().unwrap());
                            }
                            pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), silent.clone());
                            pipe(server, client, silent.clone());
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
        }
        Self {
            addr,
            silent,
            conns,
            stop,
        }
    }

    /// Stops forwarding (connections stay open, bytes wait) or resumes.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    /// Closes every open connection (new ones are accepted).
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.silent.store(false, Ordering::SeqCst);
        self.cut();
    }
}

/// Copies `from` to `to` on a thread of its own; while silent it reads nothing.
fn pipe(mut from: TcpStream, mut to: TcpStream, silent: Arc<AtomicBool>) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if silent.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Bytes read before the proxy went silent are held until it speaks again.
            while silent.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
