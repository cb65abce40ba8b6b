//! Who a client is, for rate limits: one IPv4 address, or one IPv6 /64.
//!
//! An ISP hands an IPv6 customer a whole /64 (often a /56 or /48), and the customer picks any
//! address inside it at will: keyed per address, one client would own 2^64 buckets. So an IPv6
//! client is its /64 prefix. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is that IPv4
//! address. Anything that is not an address is one shared "unknown" client, so a missing
//! header can only ever slow down everyone who lacks it.

use std::net::{IpAddr, Ipv6Addr};

/// The key of a client with no readable address.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The rate-limit key of the client at `ip` (as a proxy header carries it; spaces trimmed).
pub fn client_key(ip: &str) -> String {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
        Err(_) => UNKNOWN_CLIENT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_are_themselves() {
        assert_eq!(client_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(client_key(" 198.51.100.1 "), "198.51.100.1");
        assert_ne!(client_key("203.0.113.9"), client_key("203.0.113.10"));
    }

    #[test]
    fn ipv6_addresses_in_one_64_are_one_client() {
        let a = client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
        let b = client_key("2001:db8:1:2::1");
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, client_key("2001:db8:1:3::1"));
    }

    #[test]
    fn mapped_ipv4_is_the_ipv4_address() {
        assert_eq!(client_key("::ffff:203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn garbage_is_the_shared_unknown_client() {
        for bad in ["", "localhost", "1.2.3", "::g", "203.0.113.9, 10.0.0.1"] {
            assert_eq!(client_key(bad), UNKNOWN_CLIENT, "{bad:?}");
        }
    }
}
