"""engine.io.compare: two run files column by column."""

import numpy as np

from engine.core.rows import Status
from engine.io.compare import compare_groups, main
from engine.io.store import ResultStore
from engine.relax.stage import RelaxRow


def write(path, energies, reasons, structures, extra_id=False):
    with ResultStore(path, "w") as store:
        rows = [RelaxRow(f"c{i}", Status.PASS if r == "" else Status.FAIL, r, energy_per_atom=e, structure=s,
                         stress=np.zeros((3, 3)))
                for i, (e, r, s) in enumerate(zip(energies, reasons, structures))]
        if extra_id:
            rows.append(RelaxRow("extra", Status.ERROR, "model failed"))
        store.append_rows("relax", rows)


def test_identical_files_agree_and_each_kind_of_difference_is_reported(tmp_path, three_structures):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    write(a, [-1.0, np.nan, -3.0], ["", "x", ""], three_structures)
    write(b, [-1.0 + 1e-9, np.nan, -3.0], ["", "x", ""], three_structures)
    moved = [s.copy() for s in three_structures]
    moved[2].translate_sites([0], [0.01, 0, 0], frac_coords=False, to_unit_cell=False)
    write(c, [-1.0, -2.0, -3.0 + 1e-3], ["", "x", "not converged"], moved, extra_id=True)
    with ResultStore(a, "r") as ra, ResultStore(b, "r") as rb, ResultStore(c, "r") as rc:
        assert compare_groups(ra, rb, 1e-6, 1e-6, structures_atol=1e-4) == []
        diffs = compare_groups(ra, rc, 1e-6, 1e-6, structures_atol=1e-4)
        assert compare_groups(ra, rc, 1e-6, 2e-3, structures_atol=0.02) == [
            diffs[0], "relax/energy_per_atom[c1]: np.float64(nan) != np.float64(-2.0)",
            "relax/reason[c2]: '' != 'not converged'",
            "relax/status[c2]: 'pass' != 'fail'"]
    assert diffs[0].startswith("relax: ids only in a.h5: []; only in c.h5: ['extra']")
    assert "relax/energy_per_atom[c2]: np.float64(-3.0) != np.float64(-2.999)" in diffs
    assert "relax/structure[c2]: differs beyond 0.0001 Å" in diffs
    assert main([str(a), str(b), "--structures"]) == 0 and main([str(a), str(c)]) == 1
