//! How a pack's work is cut into [`Chunks`] of networks × rows, run on the CPU's threads and
//! summed in a fixed order.

use std::ops::Range;

use burn::tensor::Tensor;
use rayon::prelude::*;

/// How a pack's work is cut into independent chunks — groups of networks × ranges of rows —
/// run in parallel and summed in a fixed order. Burn's CPU backend runs every elementwise op
/// below ~4M elements and every matrix product below 192³ multiply-adds on one thread, so one
/// pass over all rows leaves the other cores idle; chunks keep them busy. The row cut depends
/// on the number of rows only and a network's rows never meet another network's in a sum, so
/// results depend neither on the core count nor on the pack. On LibTorch (GPU or CPU) one
/// chunk: it has its own parallelism, and a GPU wants the whole pack in each kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks {
    pub max_row_chunks: usize,
    pub min_rows: usize,
    /// Networks per chunk.
    pub networks: usize,
}

impl Chunks {
    /// Up to 4 row chunks of at least 256 rows (a 1,280-point batch: 4 × 320), each network
    /// on its own.
    pub const CPU: Chunks = Chunks {
        max_row_chunks: 4,
        min_rows: 256,
        networks: 1,
    };
    pub const ONE: Chunks = Chunks {
        max_row_chunks: 1,
        min_rows: usize::MAX,
        networks: usize::MAX,
    };

    /// The row ranges of `n` rows, as equal as possible.
    pub fn row_ranges(&self, n: usize) -> Vec<Range<usize>> {
        let chunks = (n / self.min_rows.max(1)).clamp(1, self.max_row_chunks.max(1));
        (0..chunks)
            .map(|c| c * n / chunks..(c + 1) * n / chunks)
            .collect()
    }

    /// The network groups of a pack of `k`.
    pub fn network_ranges(&self, k: usize) -> Vec<Range<usize>> {
        let per = self.networks.clamp(1, k.max(1));
        (0..k.div_ceil(per))
            .map(|g| g * per..((g + 1) * per).min(k))
            .collect()
    }

    /// Per network, Σ over row chunks of `f(networks, rows)` = (losses `[G]`, gradient rows
    /// `[G, P]`), computed in parallel, rows added in chunk order; the groups stacked in order.
    pub(super) fn sum(
        &self,
        k: usize,
        n: usize,
        f: impl Fn(&Range<usize>, &Range<usize>) -> (Tensor<1>, Tensor<2>) + Sync,
    ) -> (Tensor<1>, Tensor<2>) {
        let rows = self.row_ranges(n);
        let tasks: Vec<(Range<usize>, Range<usize>)> = self
            .network_ranges(k)
            .into_iter()
            .flat_map(|g| rows.iter().map(move |r| (g.clone(), r.clone())))
            .collect();
        let parts: Vec<(Tensor<1>, Tensor<2>)> = if tasks.len() == 1 {
            tasks.iter().map(|(g, r)| f(g, r)).collect()
        } else {
            tasks.par_iter().map(|(g, r)| f(g, r)).collect()
        };
        let groups: Vec<(Tensor<1>, Tensor<2>)> = parts
            .chunks(rows.len())
            .map(|group| {
                group
                    .iter()
                    .cloned()
                    .reduce(|(l1, g1), (l2, g2)| (l1.add(l2), g1.add(g2)))
                    .expect("at least one row chunk")
            })
            .collect();
        if groups.len() == 1 {
            return groups.into_iter().next().expect("one group");
        }
        let (losses, grads): (Vec<_>, Vec<_>) = groups.into_iter().unzip();
        (Tensor::cat(losses, 0), Tensor::cat(grads, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn row_chunks_cover_the_rows_in_order_and_depend_on_the_row_count_only() {
        let lens = |c: Chunks, n| c.row_ranges(n).iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(Chunks::CPU, 1280), [320; 4]);
        assert_eq!(lens(Chunks::CPU, 126), [126]);
        assert_eq!(lens(Chunks::CPU, 600), [300, 300]);
        assert_eq!(lens(Chunks::CPU, 1000), [333, 333, 334]);
        assert_eq!(lens(Chunks::CPU, 4096), [1024; 4]);
        assert_eq!(lens(Chunks::ONE, 4096), [4096]);
        for n in [1, 255, 256, 513, 1281, 5000] {
            let r = Chunks::CPU.row_ranges(n);
            assert_eq!(r[0].start, 0);
            assert_eq!(r.last().unwrap().end, n);
            assert!(r.windows(2).all(|w| w[0].end == w[1].start), "{n}: {r:?}");
        }
    }

    #[test]
    fn network_groups_cover_the_pack_in_order() {
        let groups = |per, k| {
            Chunks {
                networks: per,
                ..Chunks::CPU
            }
            .network_ranges(k)
        };
        assert_eq!(groups(1, 3), [0..1, 1..2, 2..3]);
        assert_eq!(groups(2, 5), [0..2, 2..4, 4..5]);
        assert_eq!(groups(usize::MAX, 7), [0..7]);
        assert_eq!(Chunks::ONE.network_ranges(1), [0..1]);
    }
}
