//! Pictures and sounds from model outputs (`edgec run --save-media DIR`): image-shaped outputs
//! become PNG files, audio-shaped ones WAV files (see `docs/cli.md` for the shapes and the value
//! mapping). Everything is encoded in memory and written atomically.

use crate::error::Error;
use crate::io::write_atomically;
use edgec_ir::Tensor;
use std::path::{Path, PathBuf};

/// What was written, and what was not and why.
#[derive(Debug, Default)]
pub struct MediaReport {
    /// Each file written, with a description (size, channels, value mapping).
    pub written: Vec<(PathBuf, String)>,
    /// Each output not written as media, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// How an output's values map onto the file's sample range, decided from the data.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Range {
    /// All values in [0, 1] (sigmoid, or already normalized).
    Unit,
    /// All values in [-1, 1] (tanh).
    Signed,
    /// Anything else: the output's own min..max.
    MinMax(f64, f64),
    /// A `u8` output: 0..255 as it is.
    Bytes,
}

impl Range {
    fn of(v: &[f64]) -> Range {
        let (min, max) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        if min >= 0.0 && max <= 1.0 {
            Range::Unit
        } else if min >= -1.0 && max <= 1.0 {
            Range::Signed
        } else {
            Range::MinMax(min, max)
        }
    }

    /// The value as a fraction of the range, in [0, 1] (NaN to 0).
    fn fraction(self, x: f64) -> f64 {
        let f = match self {
            Range::Unit => x,
            Range::Signed => (x + 1.0) / 2.0,
            Range::MinMax(lo, hi) if hi > lo => (x - lo) / (hi - lo),
            Range::MinMax(..) => 0.5,
            Range::Bytes => x / 255.0,
        };
        if f.is_nan() {
            0.0
        } else {
            f.clamp(0.0, 1.0)
        }
    }

    fn describe(self, to: &str) -> String {
        match self {
            Range::Unit => format!("values in [0, 1] mapped to {to}"),
            Range::Signed => format!("values in [-1, 1] (tanh) mapped to {to}"),
            Range::MinMax(lo, hi) => {
                format!("values in [{lo:.4}, {hi:.4}] (neither [0, 1] nor [-1, 1]) stretched to {to}")
            }
            Range::Bytes => format!("u8 values 0..255 mapped to {to}"),
        }
    }
}

/// How an output is laid out as media.
#[derive(Debug)]
enum Kind {
    /// Batch, channels (1 grey, 3 RGB, 4 RGBA), height, width; `nhwc`: channels last.
    Image { n: usize, c: usize, h: usize, w: usize, nhwc: bool },
    /// Batch, channels (1 or 2), samples per channel.
    Audio { n: usize, c: usize, t: usize },
}

/// Images must be at least this many pixels on a side and clips this many samples long, so that
/// small feature maps and vectors are not taken for media.
const MIN_SIDE: usize = 2;
const MIN_SAMPLES: usize = 64;

fn classify(dims: &[usize]) -> Result<Kind, String> {
    let image_c = |c: usize| matches!(c, 1 | 3 | 4);
    match *dims {
        [n, c, h, w] if image_c(c) && h >= MIN_SIDE && w >= MIN_SIDE => {
            Ok(Kind::Image { n, c, h, w, nhwc: false })
        }
        [n, h, w, c] if image_c(c) && h >= MIN_SIDE && w >= MIN_SIDE => {
            Ok(Kind::Image { n, c, h, w, nhwc: true })
        }
        [_, _, _, _] => Err("rank 4 but neither N×C×H×W nor N×H×W×C with C in 1, 3, 4".into()),
        [n, t] if t >= MIN_SAMPLES => Ok(Kind::Audio { n, c: 1, t }),
        [n, c, t] if (c == 1 || c == 2) && t >= MIN_SAMPLES => Ok(Kind::Audio { n, c, t }),
        [_, c, _] if c != 1 && c != 2 => {
            Err(format!("rank 3 with {c} channels: audio is [N, 1, T] or [N, 2, T]"))
        }
        [..] if dims.len() == 2 || dims.len() == 3 => {
            Err(format!("fewer than {MIN_SAMPLES} samples for audio"))
        }
        _ => Err(format!("rank {}: images are rank 4, audio rank 2 or 3", dims.len())),
    }
}

/// A file name from an output name: letters, digits, `-`, `_`, `.`; anything else becomes `_`.
fn file_stem(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if s.trim_matches('.').is_empty() {
        "output".into()
    } else {
        s
    }
}

/// Writes every image- or audio-shaped output into `dir` (created if missing): `<name>_<i>.png`
/// or `<name>_<i>.wav` per batch item `i`. Non-numeric outputs and other shapes are skipped with
/// a reason, never an error.
pub fn save_media(dir: &Path, outputs: &[(String, Tensor)], sample_rate: u32) -> Result<MediaReport, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Usage(format!("--save-media: cannot create {}: {e}", dir.display())))?;
    let mut report = MediaReport::default();
    for (name, t) in outputs {
        let dims = t.shape().to_vec();
        let kind = match classify(&dims) {
            Ok(k) => k,
            Err(why) => {
                report.skipped.push((name.clone(), format!("{dims:?}: {why}")));
                continue;
            }
        };
        if t.scalar_type() == edgec_ir::ScalarType::Bool {
            report
                .skipped
                .push((name.clone(), format!("{}: booleans are neither pictures nor sounds", t.ty())));
            continue;
        }
        let v = t.to_f64_vec();
        // Bytes are pixel values already; every other type is mapped from its range.
        let range = if t.scalar_type() == edgec_ir::ScalarType::U8 { Range::Bytes } else { Range::of(&v) };
        let stem = file_stem(name);
        match kind {
            Kind::Image { n, c, h, w, nhwc } => {
                let color = match c {
                    1 => png::ColorType::Grayscale,
                    3 => png::ColorType::Rgb,
                    _ => png::ColorType::Rgba,
                };
                for b in 0..n {
                    let mut pixels = Vec::with_capacity(h * w * c);
                    for y in 0..h {
                        for x in 0..w {
                            for ch in 0..c {
                                let i = if nhwc {
                                    ((b * h + y) * w + x) * c + ch
                                } else {
                                    ((b * c + ch) * h + y) * w + x
                                };
                                pixels.push((range.fraction(v[i]) * 255.0).round() as u8);
                            }
                        }
                    }
                    let bytes = encode_png(w as u32, h as u32, color, &pixels)?;
                    let path = dir.join(format!("{stem}_{b}.png"));
                    write_atomically(&path, &bytes)?;
                    let what = format!(
                        "{w}x{h} {} PNG from {} {dims:?}, {}",
                        ["grey", "", "RGB", "RGBA"][c - 1],
                        if nhwc { "N×H×W×C" } else { "N×C×H×W" },
                        range.describe("0..255")
                    );
                    report.written.push((path, what));
                }
            }
            Kind::Audio { n, c, t: samples } => {
                for b in 0..n {
                    let spec = hound::WavSpec {
                        channels: c as u16,
                        sample_rate,
                        bits_per_sample: 16,
                        sample_format: hound::SampleFormat::Int,
                    };
                    let mut cursor = std::io::Cursor::new(Vec::new());
                    let wav_err =
                        |e: hound::Error| Error::Usage(format!("--save-media: WAV for {name}: {e}"));
                    let mut wr = hound::WavWriter::new(&mut cursor, spec).map_err(wav_err)?;
                    // WAV interleaves channels per frame.
                    for s in 0..samples {
                        for ch in 0..c {
                            let x = range.fraction(v[(b * c + ch) * samples + s]) * 2.0 - 1.0;
                            wr.write_sample((x * 32767.0).round() as i16).map_err(wav_err)?;
                        }
                    }
                    wr.finalize().map_err(wav_err)?;
                    let path = dir.join(format!("{stem}_{b}.wav"));
                    write_atomically(&path, cursor.get_ref())?;
                    let what = format!(
                        "{samples} samples × {c} channel(s) at {sample_rate} Hz, 16-bit PCM, from {dims:?}, {}",
                        range.describe("-32767..32767")
                    );
                    report.written.push((path, what));
                }
            }
        }
    }
    Ok(report)
}

/// An 8-bit PNG of `pixels` (rows top to bottom, channels interleaved).
pub fn encode_png(width: u32, height: u32, color: png::ColorType, pixels: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let bug = |e: png::EncodingError| Error::Internal(format!("PNG encoding: {e}"));
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(bug)?;
        w.write_image_data(pixels).map_err(bug)?;
        w.finish().map_err(bug)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_ranges() {
        assert!(matches!(classify(&[2, 3, 32, 32]), Ok(Kind::Image { n: 2, c: 3, nhwc: false, .. })));
        assert!(matches!(classify(&[1, 16, 16, 4]), Ok(Kind::Image { c: 4, nhwc: true, .. })));
        assert!(matches!(classify(&[1, 1, 512]), Ok(Kind::Audio { n: 1, c: 1, t: 512 })));
        assert!(matches!(classify(&[3, 1000]), Ok(Kind::Audio { n: 3, c: 1, t: 1000 })));
        assert!(classify(&[1, 16, 512]).unwrap_err().contains("16 channels"));
        assert!(classify(&[1, 8, 5, 5]).is_err());
        assert!(classify(&[7]).is_err());
        assert_eq!(Range::of(&[0.0, 0.5, 1.0]), Range::Unit);
        assert_eq!(Range::of(&[-0.9, 0.5]), Range::Signed);
        assert_eq!(Range::Signed.fraction(-1.0), 0.0);
        assert_eq!(Range::MinMax(2.0, 4.0).fraction(3.0), 0.5);
        assert_eq!(Range::Unit.fraction(f64::NAN), 0.0);
        assert_eq!(file_stem("a/b:c"), "a_b_c");
    }
}
