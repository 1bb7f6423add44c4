#!/usr/bin/env python3
"""xlsx_recalc.py - look inside attn's live-formula workbooks (tests/test_export_xlsx.c).

  xlsx_recalc.py dump FILE.xlsx
      Recalculates every formula with Gnumeric (ssconvert --recalc) and prints each
      number of each block, one per line:  sheet<TAB>key<TAB>i<TAB>j<TAB>value
  xlsx_recalc.py edit IN.xlsx OUT.xlsx SHEET KEY I J VALUE
      Sets data cell (I, J) of block KEY of SHEET to VALUE (openpyxl), saves OUT.
  xlsx_recalc.py cached FILE.xlsx TOL
      Recalculates as dump does and compares every number of every block with
      the result cached in the file (the library's values, openpyxl); prints
      "cells=N maxdiff=D at SHEET!KEY(i,j)" and fails when D > TOL.
  xlsx_recalc.py check FILE.xlsx TOL
      dump and cached from one recalculation: dump's lines, then cached's line
      (or "cached values not checked: ..." without openpyxl, not a failure).
  xlsx_recalc.py formulas FILE.xlsx SHEET KEY [SHEET KEY]...
      Prints "formulas=N others=M colour=C" for each block's data cells, one line
      a block: how many are formulas, how many are not, and whether a colour
      scale covers them.

  xlsx_recalc.py screenshot FILE.xlsx OUT.png SHEET[:DPI]...
      Renders sheets as Gnumeric prints them (ssconvert to PDF, Ghostscript to
      PNG), trims them and stacks them into one image: how
      docs/images/xlsx-demo.png is made (`attn demo --xlsx demo.xlsx`, then
      `screenshot demo.xlsx xlsx-demo.png S1:130 Compare:100`). Needs gs and
      python3-pil. Gnumeric ignores colour scales, so the image has none.

A block is what attn writes: a title cell "<Key>: <what>", the column labels on
the row below it, then one labelled row per data row. Data cell (i, j) of a
block titled at (r, c) is at (r + 2 + i, c + 1 + j).

Exit status 77 when a tool is missing (ssconvert, or openpyxl for edit and
formulas), with the reason on stderr, so that the caller can skip.
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile

MISSING = 77
# openpyxl uses numpy when it finds it, and numpy's import is most of the
# helper's start-up (its thread pools too): none of it is needed here.
sys.modules.setdefault("numpy", None)
TITLE = re.compile(r"^([^:]{1,40}): ")


def sheet_names(path):
    """The sheets' names in workbook order (= ssconvert's %n)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as z:
        root = ET.fromstring(z.read("xl/workbook.xml"))
    return [s.get("name") for s in root.find("m:sheets", ns).findall("m:sheet", ns)]


def blocks(grid):
    """(key, r, c, rows, cols) for every block of a grid of strings."""
    def cell(r, c):
        return grid[r][c] if r < len(grid) and c < len(grid[r]) else ""

    found = []
    for r, row in enumerate(grid):
        for c, text in enumerate(row):
            m = TITLE.match(text)
            if not m:
                continue
            cols = 0
            while cell(r + 1, c + 1 + cols) != "":
                cols += 1
            rows = 0
            while cell(r + 2 + rows, c) != "":
                rows += 1
            if rows and cols:
                found.append((m.group(1), r, c, rows, cols))
    return found


def recalc(path):
    """{(sheet, key, i, j): text} of every block cell after Gnumeric's recalculation,
    in workbook order; None when ssconvert is missing."""
    if not shutil.which("ssconvert"):
        print("ssconvert (Debian package gnumeric) is not installed", file=sys.stderr)
        return None
    names = sheet_names(path)
    cells = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sheet_%n.csv")
        cmd = ["ssconvert", "-S", "--recalc", "-T", "Gnumeric_stf:stf_assistant",
               "-O", "format=raw separator=, quoting-mode=auto", path, out]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("ssconvert failed: %s" % r.stderr.strip())
        for n, name in enumerate(names):
            with open(os.path.join(tmp, "sheet_%d.csv" % n), newline="", encoding="utf-8") as f:
                grid = list(csv.reader(f))
            for key, r0, c0, rows, cols in blocks(grid):
                for i in range(rows):
                    for j in range(cols):
                        row = grid[r0 + 2 + i]
                        v = row[c0 + 1 + j] if c0 + 1 + j < len(row) else ""
                        cells[(name, key, i, j)] = (v, r0 + 3 + i, c0 + 2 + j)
    return cells


def print_cells(cells):
    for (name, key, i, j), (v, _, _) in cells.items():
        print("%s\t%s\t%d\t%d\t%s" % (name, key, i, j, v))


def dump(path):
    cells = recalc(path)
    if cells is None:
        return MISSING
    print_cells(cells)
    return 0


def cached(path, tol):
    """Gnumeric's numbers against the cached ones, cell by cell."""
    cells = recalc(path)
    if cells is None:
        return MISSING
    wb = load(path, data_only=True)
    if wb is None:
        return MISSING
    return compare(cells, wb, tol)


def check(path, tol):
    """dump, then cached, from one run of ssconvert."""
    cells = recalc(path)
    if cells is None:
        return MISSING
    print_cells(cells)
    wb = load(path, data_only=True, why_to=sys.stdout)
    if wb is None:
        return 0
    return compare(cells, wb, tol)


def compare(cells, wb, tol):
    """Prints the worst difference of the recalculated cells from the cached
    ones; 1 when it is over tol."""
    worst, where, n = 0.0, "-", 0
    for (name, key, i, j), (v, row, col) in cells.items():
        want = wb[name].cell(row=row, column=col).value
        if isinstance(want, str) or want is None:
            if str(want) != v:
                worst, where = float("inf"), "%s!%s(%d,%d): %r vs %r" % (name, key, i, j, v, want)
            continue
        n += 1
        d = abs(float(v) - float(want))
        if d > worst:
            worst, where = d, "%s!%s(%d,%d)" % (name, key, i, j)
    print("cells=%d maxdiff=%.3g at %s" % (n, worst, where))
    return 0 if worst <= float(tol) else 1


def load(path, data_only=False, why_to=sys.stderr):
    try:
        import openpyxl  # Debian package python3-openpyxl
    except ImportError:
        print("cached values not checked: openpyxl (Debian package python3-openpyxl) is not installed",
              file=why_to)
        return None
    return openpyxl.load_workbook(path, data_only=data_only)


def find(ws, key):
    """(row, col), 1-based, of the title cell of block `key`."""
    for row in ws.iter_rows():
        for c in row:
            if isinstance(c.value, str) and c.value.startswith(key + ": "):
                return c.row, c.column
    raise SystemExit("no block '%s' on sheet '%s'" % (key, ws.title))


def edit(src, dst, sheet, key, i, j, value):
    wb = load(src)
    if wb is None:
        return MISSING
    ws = wb[sheet]
    r, c = find(ws, key)
    ws.cell(row=r + 2 + int(i), column=c + 1 + int(j)).value = float(value)
    wb.save(dst)
    return 0


def formulas(path, *pairs):
    wb = load(path)
    if wb is None:
        return MISSING
    for k in range(0, len(pairs), 2):
        block_formulas(wb, pairs[k], pairs[k + 1])
    return 0


def block_formulas(wb, sheet, key):
    ws = wb[sheet]
    r, c = find(ws, key)
    cols = 0
    while ws.cell(row=r + 1, column=c + 1 + cols).value not in (None, ""):
        cols += 1
    rows = 0
    while ws.cell(row=r + 2 + rows, column=c).value not in (None, ""):
        rows += 1
    nf = no = 0
    for i in range(rows):
        for j in range(cols):
            v = ws.cell(row=r + 2 + i, column=c + 1 + j).value
            if isinstance(v, str) and v.startswith("="):
                nf += 1
            else:
                no += 1
    # A colour scale whose range holds the block's first data cell.
    from openpyxl.utils import get_column_letter
    first = "%s%d" % (get_column_letter(c + 1), r + 2)
    colour = 0
    for rng in ws.conditional_formatting:
        if first in rng.sqref and any(rule.type == "colorScale" for rule in rng.rules):
            colour = 1
    print("formulas=%d others=%d colour=%d" % (nf, no, colour))


def screenshot(path, out, sheets):
    try:
        from PIL import Image, ImageChops
    except ImportError:
        print("PIL (Debian package python3-pil) is not installed", file=sys.stderr)
        return MISSING
    if not shutil.which("ssconvert") or not shutil.which("gs"):
        print("ssconvert (gnumeric) and gs (ghostscript) are needed", file=sys.stderr)
        return MISSING
    images = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, spec in enumerate(sheets):
            name, _, dpi = spec.partition(":")
            pdf, png = os.path.join(tmp, "%d.pdf" % k), os.path.join(tmp, "%d.png" % k)
            subprocess.run(["ssconvert", "-O", "sheet=\"%s\"" % name, path, pdf],
                           capture_output=True, check=True)
            subprocess.run(["gs", "-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=png16m",
                            "-r%s" % (dpi or "120"), "-dTextAlphaBits=4", "-dGraphicsAlphaBits=4",
                            "-dFirstPage=1", "-dLastPage=1", "-sOutputFile=" + png, pdf],
                           check=True)
            im = Image.open(png).convert("RGB")
            box = ImageChops.difference(im, Image.new("RGB", im.size, "white")).getbbox()
            images.append(im.crop((max(box[0] - 16, 0), max(box[1] - 16, 0),
                                   min(box[2] + 16, im.width), min(box[3] + 16, im.height))))
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    y = 0
    for im in images:
        sheet.paste(im, (0, y))
        y += im.height
    sheet.save(out, optimize=True)
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "dump":
        return dump(argv[2])
    if len(argv) == 4 and argv[1] == "cached":
        return cached(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], argv[3])
    if len(argv) == 9 and argv[1] == "edit":
        return edit(*argv[2:])
    if len(argv) >= 5 and argv[1] == "screenshot":
        return screenshot(argv[2], argv[3], argv[4:])
    if len(argv) >= 5 and len(argv) % 2 == 1 and argv[1] == "formulas":
        return formulas(*argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
