//! One ICMP echo (IPv4) from a namespace, over a raw socket: whether `dst` answered within the
//! timeout. For tests of ICMP filter rules; the lab has no `ping` binary to rely on.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recvfrom, sendto, socket,
};

use super::netns::Netns;

/// Send one echo request from `from` to `dst`; true when the matching echo reply arrived.
pub fn ping4(from: &Netns, dst: Ipv4Addr, timeout: Duration) -> bool {
    from.run_in(|| echo(dst, timeout).unwrap_or(false))
        .unwrap_or(false)
}

fn echo(dst: Ipv4Addr, timeout: Duration) -> nix::Result<bool> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK,
        SockProtocol::Icmp,
    )?;
    let id = (std::process::id() & 0xffff) as u16;
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    sendto(fd.as_raw_fd(), &request(id), &to, MsgFlags::empty())?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        match recvfrom::<SockaddrIn>(fd.as_raw_fd(), &mut buf) {
            Ok((n, Some(src))) if src.ip() == dst && is_reply(&buf[..n], id) => return Ok(true),
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Echo request: type 8, code 0, checksum, identifier, sequence 1, 8 bytes of payload.
fn request(id: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(b"pfstate!");
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// A raw IPv4 socket receives the IP header too; the reply is type 0 with our identifier.
fn is_reply(packet: &[u8], id: u16) -> bool {
    let Some(header) = packet.first().map(|b| usize::from(b & 0x0f) * 4) else {
        return false;
    };
    let icmp = &packet[header.min(packet.len())..];
    icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes()
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        assert_eq!(checksum(&request(0x1234)), 0);
    }
}
