//! The few collectives the production driver needs, with and without MPI.
//!
//! Without the `mpi` feature (or with one rank) [`Comm::single`] makes the same driver run
//! on one machine.

/// A communicator: rank, size, and element-wise integer reductions across ranks.
pub struct Comm {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    world: Option<mpi::topology::SimpleCommunicator>,
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

impl Comm {
    /// A single process (rank 0 of 1).
    pub fn single() -> Self {
        Comm {
            rank: 0,
            size: 1,
            #[cfg(feature = "mpi")]
            world: None,
            #[cfg(feature = "mpi")]
            _universe: None,
        }
    }

    /// Initialise MPI when built with the `mpi` feature and launched under an MPI launcher;
    /// otherwise a single process.
    pub fn init() -> Self {
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::Communicator;
            if let Some(universe) = mpi::initialize() {
                let world = universe.world();
                let (rank, size) = (world.rank() as usize, world.size() as usize);
                return Comm {
                    rank,
                    size,
                    world: Some(world),
                    _universe: Some(universe),
                };
            }
        }
        Self::single()
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Element-wise sum of `v` over all ranks, in place (every rank gets the result).
    pub fn sum(&self, v: &mut [i64]) {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            use mpi::collective::SystemOperation;
            use mpi::traits::CommunicatorCollectives;
            let send = v.to_vec();
            w.all_reduce_into(&send[..], v, SystemOperation::sum());
        }
        let _ = v;
    }

    /// Element-wise maximum of `v` over all ranks, in place.
    pub fn max(&self, v: &mut [i64]) {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            use mpi::collective::SystemOperation;
            use mpi::traits::CommunicatorCollectives;
            let send = v.to_vec();
            w.all_reduce_into(&send[..], v, SystemOperation::max());
        }
        let _ = v;
    }
}

/// Weighted partition of items with `weights` over `nranks` (desispec's `weighted_partition`):
/// items sorted by decreasing weight (ties by index), each given to the rank with the smallest
/// running total (ties to the lowest rank). Returns the rank of each item.
pub fn weighted_partition(weights: &[i64], nranks: usize) -> Vec<usize> {
    let nranks = nranks.max(1);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]).then(a.cmp(&b)));
    let mut totals = vec![0i64; nranks];
    let mut owner = vec![0usize; weights.len()];
    for i in order {
        let r = (0..nranks).min_by_key(|&r| (totals[r], r)).unwrap_or(0);
        totals[r] += weights[i];
        owner[i] = r;
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_balances_by_weight() {
        let owner = weighted_partition(&[10, 1, 7, 3, 3], 2);
        // 10 → r0; 7 → r1; 3 (idx3) → r1 (7<10); 3 (idx4) → r0 (10<10? no, 10 vs 10: r0); 1 → r1
        assert_eq!(owner, vec![0, 1, 1, 1, 0]);
        let mut t = [0i64; 2];
        for (i, &r) in owner.iter().enumerate() {
            t[r] += [10, 1, 7, 3, 3][i];
        }
        assert_eq!(t, [13, 11]);
        assert_eq!(weighted_partition(&[5, 5, 5], 1), vec![0, 0, 0]);
    }
}
