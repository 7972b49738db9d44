//! `modsync reference`: a benchmark's test grid with its exact or reference solution, as CSV.

use trainer_core::pde::Pde;

use crate::files::csv_number;

/// The header is the PDE's coordinate names then `u`; one row per point of the test grid of
/// `grid` points per axis (the benchmark's own without).
pub fn csv(pde: &dyn Pde, grid: Option<usize>) -> String {
    let grid = pde.test_grid(grid);
    let u = pde.reference(&grid.points);
    let dim = pde.dim();
    let mut csv = pde.coords().join(",") + ",u\n";
    for (p, u) in grid.points.chunks_exact(dim).zip(&u) {
        for x in p {
            csv.push_str(&csv_number(*x));
            csv.push(',');
        }
        csv.push_str(&csv_number(*u));
        csv.push('\n');
    }
    csv
}
