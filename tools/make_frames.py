#!/usr/bin/python3
"""Draws the demo's sample camera frames (synthetic scenes: a sidewalk with tactile paving,
a crossing with a traffic light, a shop shelf with a hand) into models/frames/.

The reference models carry random weights, so these frames exercise the pipeline (decode,
letterbox, inference, decoders, drawing) rather than accuracy. Deterministic: same bytes
every run."""
import os
import sys

from PIL import Image, ImageDraw


def sidewalk(w=960, h=720):
    im = Image.new("RGB", (w, h), (120, 160, 210))
    d = ImageDraw.Draw(im)
    d.polygon([(0, h), (w, h), (w * 0.62, h * 0.42), (w * 0.38, h * 0.42)], fill=(150, 150, 150))
    for i in range(12):  # yellow tactile paving strip with raised bars
        t0, t1 = i / 12, (i + 0.6) / 12
        y0, y1 = h * 0.42 + (h * 0.58) * t0 ** 1.3, h * 0.42 + (h * 0.58) * t1 ** 1.3
        half0, half1 = 20 + 90 * t0, 20 + 90 * t1
        d.polygon([(w / 2 - half0, y0), (w / 2 + half0, y0), (w / 2 + half1, y1), (w / 2 - half1, y1)],
                  fill=(225, 190, 40))
    d.rectangle([700, 380, 780, 520], fill=(90, 60, 40))      # a bin as an obstacle
    d.ellipse([180, 300, 260, 380], fill=(230, 200, 170))     # a pedestrian
    d.rectangle([190, 380, 250, 560], fill=(40, 60, 120))
    return im


def crossing(w=960, h=720):
    im = Image.new("RGB", (w, h), (140, 170, 200))
    d = ImageDraw.Draw(im)
    d.rectangle([0, h * 0.55, w, h], fill=(70, 70, 75))
    for i in range(8):
        d.rectangle([60 + i * 110, h * 0.7, 130 + i * 110, h * 0.95], fill=(235, 235, 235))
    d.rectangle([455, 120, 505, 400], fill=(50, 50, 50))
    d.rectangle([440, 120, 520, 300], fill=(25, 25, 25))
    d.ellipse([455, 135, 505, 185], fill=(230, 40, 40))
    d.ellipse([455, 190, 505, 240], fill=(60, 50, 20))
    d.ellipse([455, 245, 505, 295], fill=(20, 60, 30))
    return im


def shelf(w=960, h=720):
    im = Image.new("RGB", (w, h), (235, 230, 220))
    d = ImageDraw.Draw(im)
    colours = [(200, 40, 40), (40, 120, 200), (240, 200, 50), (60, 160, 80), (150, 80, 160)]
    for row in range(3):
        y = 80 + row * 200
        d.rectangle([40, y + 150, w - 40, y + 165], fill=(120, 90, 60))
        for k in range(7):
            x = 60 + k * 125
            d.rectangle([x, y + 30, x + 90, y + 150], fill=colours[(k + row) % len(colours)])
    d.ellipse([600, 480, 760, 640], fill=(225, 180, 150))   # a hand reaching in
    for k in range(4):
        d.rectangle([610 + k * 38, 400, 634 + k * 38, 500], fill=(225, 180, 150))
    return im


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "models/frames"
    os.makedirs(out, exist_ok=True)
    for name, fn in (("sidewalk", sidewalk), ("crossing", crossing), ("shelf", shelf)):
        fn().save(os.path.join(out, name + ".jpg"), quality=90)
        fn().save(os.path.join(out, name + ".png"))
    print("frames written to", out)


if __name__ == "__main__":
    main()
