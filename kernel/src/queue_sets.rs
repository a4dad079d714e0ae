//! One queue set per CPU (issue 21): how many completion EQs the kernel
//! asks the mlx5 driver for, which CPU each set's MSI-X vector is bound
//! to, which set a CPU's VNICs use, and the attach line that says so when
//! the device has fewer completion vectors than there are CPUs.
//!
//! Set i is on CPU i. With fewer sets than CPUs (the function's MSI-X
//! table or EQ limit is smaller than the CPU count), CPU c uses set
//! c mod sets, as the driver's `Nic::create_on` takes it: CPUs sets..
//! share the sets of CPUs 0.., deterministically, and said once at attach.

use alloc::format;
use alloc::string::String;

/// Completion EQs to ask for (`mlx5::Config::comp_eqs`): one per online
/// CPU, at least one, at most `max` (the kernel's per-port tables).
pub fn wanted(cpus: usize, max: usize) -> u16 {
    cpus.clamp(1, max.max(1)).min(usize::from(u16::MAX)) as u16
}

/// The CPU queue set `set`'s vector is delivered to and its work runs on.
pub fn cpu_of_set(set: usize, cpus: usize) -> usize {
    set % cpus.max(1)
}

/// The queue set CPU `cpu` uses when the function has `sets` of them.
pub fn set_of_cpu(cpu: usize, sets: usize) -> usize {
    cpu % sets.max(1)
}

/// With fewer sets than CPUs, the attach line (after `mlx5 <pci>: `)
/// saying which CPUs share: `8 CPUs, 3 completion vectors: CPUs 3..7
/// share the queue sets of CPUs 0..2 (CPU c uses set c mod 3)`. `None`
/// when every CPU has its own.
pub fn sharing(cpus: usize, sets: usize) -> Option<String> {
    let sets = sets.max(1);
    if cpus <= sets {
        return None;
    }
    let owners = cpus.min(2 * sets) - sets;
    let range = |first: usize, last: usize| {
        if first == last {
            format!("CPU {first}")
        } else {
            format!("CPUs {first}..{last}")
        }
    };
    let shares = if cpus - sets == 1 { "shares" } else { "share" };
    let plural = if owners == 1 { "" } else { "s" };
    Some(format!(
        "{cpus} CPUs, {sets} completion vector{}: {} {shares} the queue set{plural} of {} (CPU c uses set c mod {sets})",
        if sets == 1 { "" } else { "s" },
        range(sets, cpus - 1),
        range(0, owners - 1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_set_per_cpu_up_to_the_bound() {
        assert_eq!(wanted(0, 16), 1);
        assert_eq!(wanted(1, 16), 1);
        assert_eq!(wanted(8, 16), 8);
        assert_eq!(wanted(64, 16), 16);
        assert_eq!(wanted(4, 0), 1);
    }

    /// Every set's vector on its own CPU, and each CPU back on that set,
    /// while there are at least as many sets as CPUs.
    #[test]
    fn own_set_round_trip() {
        for cpus in 1..=16 {
            for sets in cpus..=16 {
                for c in 0..cpus {
                    let s = set_of_cpu(c, sets);
                    assert_eq!(s, c);
                    assert_eq!(cpu_of_set(s, cpus), c);
                }
            }
            assert_eq!(sharing(cpus, cpus), None);
            assert_eq!(sharing(cpus, 16), None);
        }
    }

    /// Fewer sets than CPUs: each set still on its own CPU (sets < CPUs),
    /// every CPU on some set whose CPU is c mod sets, sets used evenly.
    #[test]
    fn shared_sets_are_deterministic() {
        for cpus in 2..=16 {
            for sets in 1..cpus {
                for s in 0..sets {
                    assert_eq!(cpu_of_set(s, cpus), s);
                }
                let mut per_set = alloc::vec![0usize; sets];
                for c in 0..cpus {
                    let s = set_of_cpu(c, sets);
                    assert!(s < sets);
                    assert_eq!(cpu_of_set(s, cpus), c % sets);
                    per_set[s] += 1;
                }
                let (lo, hi) = (per_set.iter().min(), per_set.iter().max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "{cpus} {sets} {per_set:?}");
                assert!(sharing(cpus, sets).is_some());
            }
        }
    }

    #[test]
    fn sharing_lines() {
        assert_eq!(
            sharing(8, 3).as_deref(),
            Some(
                "8 CPUs, 3 completion vectors: CPUs 3..7 share the queue sets of CPUs 0..2 (CPU c uses set c mod 3)"
            )
        );
        assert_eq!(
            sharing(4, 3).as_deref(),
            Some(
                "4 CPUs, 3 completion vectors: CPU 3 shares the queue set of CPU 0 (CPU c uses set c mod 3)"
            )
        );
        assert_eq!(
            sharing(4, 1).as_deref(),
            Some(
                "4 CPUs, 1 completion vector: CPUs 1..3 share the queue set of CPU 0 (CPU c uses set c mod 1)"
            )
        );
        assert_eq!(
            sharing(6, 2).as_deref(),
            Some(
                "6 CPUs, 2 completion vectors: CPUs 2..5 share the queue sets of CPUs 0..1 (CPU c uses set c mod 2)"
            )
        );
        assert_eq!(sharing(4, 4), None);
        assert_eq!(
            sharing(4, 0).as_deref().map(|l| &l[..22]),
            Some("4 CPUs, 1 completion v")
        );
    }
}
