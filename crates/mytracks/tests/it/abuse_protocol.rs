//! Protocol correctness at the edges, with raw packets: the client's Maximum Packet Size holds
//! for every packet the broker sends, the end of a connection is settled before its client id
//! is served again, MQTT 3.1's DUP flag on PUBREL, acknowledgements of the wrong type, and a
//! DISCONNECT that reaches a client in the middle of a burst.

use crate::abuse_mqtt::expect_packet;
use crate::support::raw::{self, Conn};
use crate::support::*;
use std::time::Duration;

const OPEN: &str = "[mqtt]\nallow_anonymous = true\n";
const PUBREC: u8 = 0x50;
const PUBCOMP: u8 = 0x70;
const WAIT: Duration = Duration::from_secs(5);

#[test]
fn an_mqtt_3_1_pubrel_with_the_dup_flag_is_accepted() {
    let server = Server::with_config(OPEN);
    let mut conn = Conn::connected(server.mqtt_port, 3, "old-phone");
    conn.send(&raw::publish(3, "t/old", b"x", 2, 1, false))
        .unwrap();
    assert_eq!(expect_packet(&mut conn, PUBREC, WAIT), [0, 1]);
    // A resent PUBREL: DUP set, legal in 3.1 (not in 3.1.1).
    conn.send(&raw::packet(0x6A, &[0, 1])).unwrap();
    assert_eq!(expect_packet(&mut conn, PUBCOMP, WAIT), [0, 1]);
}
