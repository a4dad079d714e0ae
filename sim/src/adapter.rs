//! What the functions of one adapter share: the board's identity. A
//! 2-port ConnectX is one board with one PCI function per port; both
//! report the same firmware (the personality), PSID, serial number and
//! system image GUID (`nic_vport_context.system_image_guid`, which a
//! driver compares to tell which functions sit on one board, as Linux's
//! LAG code does), while each port has its own MAC, port GUID, vport,
//! queues, steering, counters and cable.
#![deny(unsafe_code)]

use crate::personality::Personality;

/// The board's identity and where one function sits on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `nic_vport_context.system_image_guid`: the same on every port.
    pub system_image_guid: u64,
    /// The board's serial number (the model's choice, one per part).
    pub serial: String,
    /// This function's port, 0-based (the PRM's port numbers start at 1).
    pub port: u8,
    /// Ports on the board.
    pub ports: u8,
}

impl Identity {
    /// Port `port` of a `ports`-port board of part `p`.
    pub fn new(p: Personality, port: u8, ports: u8) -> Identity {
        let idx = Personality::ALL.iter().position(|q| *q == p).unwrap_or(0) as u64;
        // Mellanox OUI 0c:42:a1 in an EUI-64, one board per part.
        let system_image_guid = 0x0c42_a103_005e_0000 | (idx << 8);
        Identity {
            system_image_guid,
            serial: format!("MT20{idx:02}X0{:05}", 4242 + idx),
            port,
            ports,
        }
    }

    /// `nic_vport_context.port_guid`: the board's GUID with the port in
    /// its low byte.
    pub fn port_guid(&self) -> u64 {
        self.system_image_guid | (u64::from(self.port) + 1)
    }
}

/// The permanent MAC of port `port` of a board whose first port has
/// `base`: consecutive addresses, as on shipped boards.
pub fn port_mac(base: [u8; 6], port: u8) -> [u8; 6] {
    let n = u64::from_be_bytes([0, 0, base[0], base[1], base[2], base[3], base[4], base[5]])
        .wrapping_add(u64::from(port));
    let b = n.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_share_the_board_and_differ_in_mac_and_port_guid() {
        let a = Identity::new(Personality::ConnectX4Lx, 0, 2);
        let b = Identity::new(Personality::ConnectX4Lx, 1, 2);
        assert_eq!(a.system_image_guid, b.system_image_guid);
        assert_eq!(a.serial, b.serial);
        assert_ne!(a.port_guid(), b.port_guid());
        assert_ne!(
            a.system_image_guid,
            Identity::new(Personality::ConnectX5, 0, 2).system_image_guid
        );
        assert_eq!(
            port_mac([0x0c, 0x42, 0xa1, 0x5e, 0x00, 0xff], 1),
            [0x0c, 0x42, 0xa1, 0x5e, 0x01, 0x00]
        );
        assert_eq!(port_mac([1, 2, 3, 4, 5, 6], 0), [1, 2, 3, 4, 5, 6]);
    }
}
