"""Write docs/contact_sheet.png: ten test-split samples of each class, so people can see the data.

The samples are the first ten of each class in ``make_dataset(seed).test_data``, i.e. exactly what
the embedded default set holds. One row per class, labelled with its class id in Pillow's built-in
bitmap font (so no font package is needed); images are scaled up 3x with nearest-neighbour so the
pixels stay honest. The data are float 0.0-255.0 (whole numbers), shown as they are: dark on light.

    .venv/bin/python scripts/make_contact_sheet.py [--seed N] [--out docs/contact_sheet.png]
"""

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from scorer.classes import NUM_CLASSES
from scorer.dataset import make_dataset

PER_ROW = 10
SCALE = 3
GAP = 4
LABEL_WIDTH = 24


def contact_sheet(seed: int) -> Image.Image:
    """Render the sheet from the first images of each class in the seed's actual test split."""
    dataset = make_dataset(seed)
    data, ids = dataset.test_data, dataset.test_label.argmax(axis=1)
    cell = 28 * SCALE + GAP
    sheet = Image.new("L", (LABEL_WIDTH + PER_ROW * cell + GAP, NUM_CLASSES * cell + GAP), color=60)
    draw = ImageDraw.Draw(sheet)
    for c in range(NUM_CLASSES):
        top = GAP + c * cell
        draw.text((4, top + 28 * SCALE // 2 - 5), str(c), fill=255)
        for j, image in enumerate(data[ids == c][:PER_ROW]):
            tile = Image.fromarray(image[0].astype("uint8")).resize((28 * SCALE, 28 * SCALE), Image.Resampling.NEAREST)
            sheet.paste(tile, (LABEL_WIDTH + GAP + j * cell, top))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "contact_sheet.png")
    args = parser.parse_args()
    contact_sheet(args.seed).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
