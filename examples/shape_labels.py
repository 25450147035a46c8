"""Print every 'colour shape' label of the built-in shapes world, comma-separated (for --labels)."""

from diffdis.data.shapes import COLOURS, SHAPES

print(",".join(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES))
