//! A minimal, read-only nf_tables netlink client: one request, its answers' attributes.
//!
//! Used where asking the kernel directly is much cheaper than running a tool that reads the
//! whole rule set first (`nft list tables`, `iptables-save`). Only GET requests are sent.

use std::ffi::c_void;

use nix::libc;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// Bound on the reads of one answer: a dump ends with NLMSG_DONE long before.
const MAX_READS: usize = 10_000;

/// Send one nf_tables GET request (`dump`: all objects of the kind) and call `visit` with the
/// address family and the attribute bytes of every answer. `None` when the kernel could not
/// be asked or answered with an error.
pub fn query(msg_type: u16, dump: bool, mut visit: impl FnMut(u8, &[u8])) -> Option<()> {
    // SAFETY: plain socket calls on a descriptor this function owns and closes.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return None;
    }
    let result = exchange(fd, msg_type, dump, &mut visit);
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}

// Over 60 lines on purpose: one request and the loop over its replies share the raw buffer
// and the socket; split, the unsafe buffer handling would be spread over several functions.
fn exchange(fd: i32, msg_type: u16, dump: bool, visit: &mut impl FnMut(u8, &[u8])) -> Option<()> {
    let mut req = [0u8; NLMSG_HDRLEN + NFGENMSG_LEN];
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    let mut flags = libc::NLM_F_REQUEST as u16;
    if dump {
        flags |= libc::NLM_F_DUMP as u16;
    }
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence
    // nfgenmsg stays zero: family AF_UNSPEC (all), version NFNETLINK_V0, res_id 0.
    // SAFETY: a zeroed sockaddr_nl is valid; buffers are valid for their lengths.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    let sent = unsafe {
        libc::sendto(
            fd,
            req.as_ptr() as *const c_void,
            req.len(),
            0,
            &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent != req.len() as isize {
        return None;
    }
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..MAX_READS {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
        if n <= 0 {
            return None;
        }
        let mut msg = &buf[..n as usize];
        while msg.len() >= NLMSG_HDRLEN {
            let mlen = u32::from_ne_bytes(msg[0..4].try_into().ok()?) as usize;
            let mtype = u16::from_ne_bytes(msg[4..6].try_into().ok()?);
            if mlen < NLMSG_HDRLEN || mlen > msg.len() {
                return None;
            }
            match i32::from(mtype) {
                libc::NLMSG_DONE => return Some(()),
                libc::NLMSG_ERROR => {
                    let err = i32::from_ne_bytes(msg.get(16..20)?.try_into().ok()?);
                    if err != 0 {
                        return None;
                    }
                }
                _ if mlen >= NLMSG_HDRLEN + NFGENMSG_LEN => {
                    visit(msg[NLMSG_HDRLEN], &msg[NLMSG_HDRLEN + NFGENMSG_LEN..mlen]);
                    if !dump {
                        return Some(());
                    }
                }
                _ => {}
            }
            let step = (mlen + 3) & !3;
            if step >= msg.len() {
                break;
            }
            msg = &msg[step..];
        }
    }
    None
}

/// The payload of the attribute of type `wanted` among `attrs`.
pub fn attr(mut attrs: &[u8], wanted: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let alen = u16::from_ne_bytes(attrs[0..2].try_into().ok()?) as usize;
        let atype = u16::from_ne_bytes(attrs[2..4].try_into().ok()?) & 0x3fff;
        if alen < 4 || alen > attrs.len() {
            return None;
        }
        if atype == wanted {
            return Some(&attrs[4..alen]);
        }
        let step = (alen + 3) & !3;
        if step >= attrs.len() {
            break;
        }
        attrs = &attrs[step..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_by_type() {
        // Two attributes: type 1 "ab\0" (len 7, padded to 8), type 2 u32.
        let mut a = vec![7, 0, 1, 0, b'a', b'b', 0, 0];
        a.extend_from_slice(&[8, 0, 2, 0, 0, 0, 0, 42]);
        assert_eq!(attr(&a, 1), Some(&b"ab\0"[..]));
        assert_eq!(attr(&a, 2), Some(&[0, 0, 0, 42][..]));
        assert_eq!(attr(&a, 3), None);
        assert_eq!(
            attr(&[200, 0, 1, 0], 1),
            None,
            "a length past the end is refused"
        );
    }
}
