//! `memory.png`, the raster twin of `memory.svg` (`edgec compile --memory-plot`): the same boxes,
//! lower bound and legend (`edgec_backends::lower::memory_plot`), drawn straight into an RGB
//! buffer and encoded with the `png` crate. Boxes and lines need no renderer, and the labels use
//! the public-domain 8×8 bitmap glyphs of `font8x8`; an SVG renderer would bring a font
//! database and text shaping for a handful of labels.

use crate::error::Error;
use edgec_backends::lower::{MemoryPlot, PlotFrame, PLOT_BOUND_COLOR};

type Rgb = (u8, u8, u8);

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas { w, h, px: vec![255; w * h * 3] }
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
        }
    }

    /// A filled rectangle from (x0, y0) to (x1, y1), at least one pixel in each direction.
    fn fill(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb) {
        let (xa, ya) = (x0.round() as i64, y0.round() as i64);
        let (xb, yb) = ((x1.round() as i64).max(xa + 1), (y1.round() as i64).max(ya + 1));
        for y in ya..yb {
            for x in xa..xb {
                self.set(x, y, c);
            }
        }
    }

    /// A one-pixel outline of the same rectangle.
    fn outline(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb) {
        let (xa, ya) = (x0.round() as i64, y0.round() as i64);
        let (xb, yb) = ((x1.round() as i64).max(xa + 1) - 1, (y1.round() as i64).max(ya + 1) - 1);
        for x in xa..=xb {
            self.set(x, ya, c);
            self.set(x, yb, c);
        }
        for y in ya..=yb {
            self.set(xa, y, c);
            self.set(xb, y, c);
        }
    }

    /// A horizontal dashed line, 6 pixels on and 4 off (as the SVG's `stroke-dasharray`).
    fn dashed(&mut self, x0: f64, x1: f64, y: f64, c: Rgb) {
        let y = y.round() as i64;
        for x in x0.round() as i64..x1.round() as i64 {
            if (x - x0.round() as i64) % 10 < 6 {
                self.set(x, y, c);
                self.set(x, y + 1, c);
            }
        }
    }

    /// Text in 8×8 glyphs with its top left at (x, y); characters outside ASCII print as `?`.
    fn text(&mut self, x: f64, y: f64, s: &str, c: Rgb) {
        let (x, y) = (x.round() as i64, y.round() as i64);
        for (i, ch) in s.chars().enumerate() {
            let code = if ch.is_ascii() { ch as usize } else { '?' as usize };
            for (row, bits) in font8x8::legacy::BASIC_LEGACY[code].iter().enumerate() {
                for col in 0..8 {
                    // Bit 0 is the leftmost pixel.
                    if bits >> col & 1 == 1 {
                        self.set(x + 8 * i as i64 + col, y + row as i64, c);
                    }
                }
            }
        }
    }
}

/// The plot as PNG bytes.
pub fn memory_png(plot: &MemoryPlot) -> Result<Vec<u8>, Error> {
    let f = PlotFrame::of(plot);
    let mut cv = Canvas::new(f.total_width as usize, f.total_height as usize);
    let (black, grey, frame) = ((0, 0, 0), (0x55, 0x55, 0x55), (0x88, 0x88, 0x88));
    // The glyphs are ASCII: the SVG title's arrows become ASCII ones.
    let title = plot.title.replace('→', "->").replace('↓', "v");
    cv.text(f.left, 8.0, &title, black);
    cv.fill(f.left, f.top, f.left + f.width, f.top + f.height, (0xf8, 0xf8, 0xf8));
    cv.outline(f.left, f.top, f.left + f.width, f.top + f.height, frame);
    for (i, b) in plot.boxes.iter().enumerate() {
        let (x0, x1) = (f.x(b.first as f64), f.x(b.last as f64 + 1.0));
        let (y0, y1) = (f.y(b.offset as f64), f.y((b.offset + b.bytes) as f64));
        cv.fill(x0, y0, x1, y1, plot.color(i));
        if x1 - x0 >= 3.0 && y1 - y0 >= 3.0 {
            cv.outline(x0, y0, x1, y1, grey);
        }
    }
    let lb = f.y(plot.lower_bound_bytes as f64);
    cv.dashed(f.left, f.left + f.width, lb, PLOT_BOUND_COLOR);
    cv.text(2.0, f.top, "0 B", black);
    cv.text(2.0, f.top + f.height - 8.0, &format!("{} B", plot.arena_bytes), black);
    for (i, (color, text, dashed)) in plot.legend().into_iter().enumerate() {
        let y = f.legend_y(i);
        if dashed {
            cv.dashed(f.left, f.left + 24.0, y + 4.0, color);
        } else {
            cv.fill(f.left, y, f.left + 24.0, y + 10.0, color);
            cv.outline(f.left, y, f.left + 24.0, y + 10.0, grey);
        }
        cv.text(f.left + 32.0, y + 1.0, &text, black);
    }
    crate::media::encode_png(cv.w as u32, cv.h as u32, png::ColorType::Rgb, &cv.px)
}
