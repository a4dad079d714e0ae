//! Fault injection: ways the tests make the model misbehave on purpose.
#![deny(unsafe_code)]

/// A fault to inject into the model (see the harness contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next command with this opcode is accepted but never completes.
    CommandNoCompletion { opcode: u16 },
    /// The next command with this opcode fails with this status and syndrome.
    CommandStatus {
        opcode: u16,
        status: u8,
        syndrome: u32,
    },
    /// Health syndrome set in the health buffer and the health counter stops.
    HealthSyndrome(u8),
    /// The health counter stops moving (no syndrome).
    HealthCounterStops,
    /// `initializing` (init segment 0x1fc bit 31) never clears.
    InitializingStuck,
    /// An internal error event (`MLX5_EVENT_TYPE_INTERNAL_ERROR` 0x08, no
    /// data) on the EQ subscribed to it, as firmware reports a fault it
    /// cannot recover from; written once, nothing else changes.
    InternalError,
    /// Firmware with a bug: every successful command's output (past the
    /// status and syndrome) has each byte replaced by a random one with
    /// probability `per_mille` / 1000, from a generator seeded with `seed`
    /// (the same run every time). The model's own state is unaffected.
    CorruptOutputs { seed: u64, per_mille: u16 },
    /// A data-path fault ([`crate::queue_faults`]).
    Queue(crate::queue_faults::QueueFault),
}

/// Armed faults; one-shot command faults are consumed when they fire.
#[derive(Debug, Default)]
pub struct Faults {
    pending: Vec<Fault>,
    /// Health syndrome currently reported (0 = none).
    pub health_syndrome: u8,
    /// Health counter frozen at this value.
    pub health_frozen: Option<u32>,
    /// Output corruption ([`Fault::CorruptOutputs`]): generator state and
    /// rate.
    pub corrupt: Option<(u64, u16)>,
    /// Data-path faults ([`crate::queue_faults`]).
    pub queues: crate::queue_faults::QueueFaults,
}

/// What an injected fault does to one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandFault {
    NoCompletion,
    Status { status: u8, syndrome: u32 },
}

impl Faults {
    /// Arm `f`; `counter_now` is the health counter value at this moment.
    pub fn inject(&mut self, f: Fault, counter_now: u32) {
        match f {
            Fault::CommandNoCompletion { .. } | Fault::CommandStatus { .. } => self.pending.push(f),
            Fault::HealthSyndrome(s) => {
                self.health_syndrome = s;
                self.health_frozen.get_or_insert(counter_now);
            }
            Fault::HealthCounterStops => {
                self.health_frozen.get_or_insert(counter_now);
            }
            // Held by the init segment itself (`InitSeg::stuck`).
            Fault::InitializingStuck => {}
            // Written as an event: `Function::inject`.
            Fault::InternalError => {}
            Fault::CorruptOutputs { seed, per_mille } => self.corrupt = Some((seed, per_mille)),
            // Armed against the device's queues: `Function::inject`.
            Fault::Queue(_) => {}
        }
    }

    pub fn clear(&mut self) {
        *self = Faults::default();
    }

    /// A function reset restarts firmware: the health buffer is clean and
    /// the counter runs again.
    pub fn clear_health(&mut self) {
        self.health_syndrome = 0;
        self.health_frozen = None;
    }

    /// Take the first armed fault for `opcode`, if any.
    pub fn take_command(&mut self, opcode: u16) -> Option<CommandFault> {
        let pos = self.pending.iter().position(|f| match f {
            Fault::CommandNoCompletion { opcode: o } | Fault::CommandStatus { opcode: o, .. } => {
                *o == opcode
            }
            _ => false,
        })?;
        match self.pending.remove(pos) {
            Fault::CommandNoCompletion { .. } => Some(CommandFault::NoCompletion),
            Fault::CommandStatus {
                status, syndrome, ..
            } => Some(CommandFault::Status { status, syndrome }),
            _ => None,
        }
    }

    /// Corrupt `out` as [`Fault::CorruptOutputs`] says, if armed.
    pub fn corrupt_output(&mut self, out: &mut [u8]) {
        let Some((state, per_mille)) = self.corrupt.as_mut() else {
            return;
        };
        for b in out {
            // splitmix64
            *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if (z % 1000) < u64::from(*per_mille) {
                *b = (z >> 32) as u8;
            }
        }
    }

    /// Cheap check for the command path: no allocation, no search when idle.
    pub fn any_command_fault(&self) -> bool {
        !self.pending.is_empty()
    }
}
