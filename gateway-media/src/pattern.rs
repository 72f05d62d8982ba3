//! A pure-Rust synthetic video source for examples, tests and benches: colour bars that scroll
//! sideways (so every frame differs and the encoder has motion to code) with the frame number
//! burned in as big digits (so a decoded frame can be matched back to what was sent, see
//! [`TestPattern::read_counter`]).

use bytes::Bytes;

use crate::convert::{rgb_to_uv, rgb_to_y};
use crate::frame::{check_size, chroma_size, FrameError, VideoFrame};
use crate::time::Rational;

/// Number of digits the counter always shows (zero-padded), so a reader knows where to look.
pub const COUNTER_DIGITS: usize = 6;

/// 3x5 bitmaps for 0-9, one row per entry, the high bit (0b100) is the left column.
const GLYPHS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// SMPTE-like bar colours in RGB (white, yellow, cyan, green, magenta, red, blue, grey).
const BARS_RGB: [(u8, u8, u8); 8] = [
    (235, 235, 235),
    (235, 235, 16),
    (16, 235, 235),
    (16, 235, 16),
    (235, 16, 235),
    (235, 16, 16),
    (16, 16, 235),
    (128, 128, 128),
];

/// Luma of the counter's background box and of its lit segments.
const BOX_Y: u8 = 16;
const DIGIT_Y: u8 = 235;

/// How far the bars scroll per frame, in pixels.
const SCROLL_PX_PER_FRAME: usize = 4;

/// Geometry of the burned-in counter for a given frame size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CounterLayout {
    /// Side of one glyph "pixel" in image pixels; 0 means the frame is too small for a counter.
    scale: usize,
}

impl CounterLayout {
    fn for_size(width: usize, height: usize) -> Self {
        // Each digit is 3 cells wide plus a 1-cell gap; the box adds a 1-cell margin around.
        let by_width = width / (COUNTER_DIGITS * 4 + 1);
        // Digits are 7 cells tall with the margin; aim for ~1/4 of the height, and fall back to
        // 1-pixel cells (or none) on tiny frames so drawing never leaves the image.
        let by_height = if height >= 24 { height / 24 } else { usize::from(height >= 7) };
        Self { scale: by_width.min(by_height) }
    }

    /// Width and height of the black box behind the digits.
    fn box_size(self) -> (usize, usize) {
        ((COUNTER_DIGITS * 4 + 1) * self.scale, 7 * self.scale)
    }

    /// Top-left pixel of glyph cell (`gx`, `gy`) of digit `i`.
    fn cell_origin(self, i: usize, gx: usize, gy: usize) -> (usize, usize) {
        (self.scale * (1 + 4 * i + gx), self.scale * (1 + gy))
    }
}

/// Moving colour bars with a frame counter, as I420 frames with `pts = index` in a time base
/// of one frame (`1 / frame_rate`).
#[derive(Clone, Debug)]
pub struct TestPattern {
    width: u32,
    height: u32,
    frame_rate: Rational,
    next_index: u64,
    bars_yuv: [(u8, u8, u8); 8],
}

impl TestPattern {
    /// A pattern of `width x height` at `frame_rate` frames per second (e.g. `30/1`).
    pub fn new(width: u32, height: u32, frame_rate: Rational) -> Result<Self, FrameError> {
        check_size(width, height)?;
        if !frame_rate.is_positive() {
            return Err(FrameError::InvalidFrameRate { num: frame_rate.num, den: frame_rate.den });
        }
        let bars_yuv = BARS_RGB.map(|(r, g, b)| {
            let (u, v) = rgb_to_uv(r, g, b);
            (rgb_to_y(r, g, b), u, v)
        });
        Ok(Self { width, height, frame_rate, next_index: 0, bars_yuv })
    }

    /// Frames per second.
    pub fn frame_rate(&self) -> Rational {
        self.frame_rate
    }

    /// The time base of the frames' pts: one tick per frame.
    pub fn time_base(&self) -> Rational {
        self.frame_rate.recip()
    }

    /// Renders frame number `index` (deterministic: the same index gives the same pixels).
    pub fn frame(&self, index: u64) -> VideoFrame {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = chroma_size(self.width, self.height);
        let (cw, ch) = (cw as usize, ch as usize);
        let mut y = vec![0u8; w * h];
        let mut u = vec![0u8; cw * ch];
        let mut v = vec![0u8; cw * ch];

        // One row of bars, then copied down: the bars are vertical.
        let offset = (index as usize).wrapping_mul(SCROLL_PX_PER_FRAME) % w;
        let bar_of = |x: usize| ((x + offset) % w) * 8 / w;
        let y_row: Vec<u8> = (0..w).map(|x| self.bars_yuv[bar_of(x)].0).collect();
        let u_row: Vec<u8> = (0..cw).map(|x| self.bars_yuv[bar_of(2 * x)].1).collect();
        let v_row: Vec<u8> = (0..cw).map(|x| self.bars_yuv[bar_of(2 * x)].2).collect();
        for row in y.chunks_exact_mut(w) {
            row.copy_from_slice(&y_row);
        }
        for row in u.chunks_exact_mut(cw) {
            row.copy_from_slice(&u_row);
        }
        for row in v.chunks_exact_mut(cw) {
            row.copy_from_slice(&v_row);
        }

        let layout = CounterLayout::for_size(w, h);
        if layout.scale > 0 {
            let (bw, bh) = layout.box_size();
            let (bw, bh) = (bw.min(w), bh.min(h));
            for row in y.chunks_exact_mut(w).take(bh) {
                row[..bw].fill(BOX_Y);
            }
            // Neutral chroma so the digits are plain white on black.
            for cy in 0..bh.div_ceil(2).min(ch) {
                u[cy * cw..cy * cw + bw.div_ceil(2).min(cw)].fill(128);
                v[cy * cw..cy * cw + bw.div_ceil(2).min(cw)].fill(128);
            }
            let digits = counter_digits(index);
            for (i, d) in digits.iter().enumerate() {
                for (gy, bits) in GLYPHS[*d as usize].iter().enumerate() {
                    for gx in 0..3 {
                        if bits & (0b100 >> gx) == 0 {
                            continue;
                        }
                        let (x0, y0) = layout.cell_origin(i, gx, gy);
                        for row in y.chunks_exact_mut(w).skip(y0).take(layout.scale) {
                            row[x0..x0 + layout.scale].fill(DIGIT_Y);
                        }
                    }
                }
            }
        }

        let (cw_stride, y_stride) = (cw, w);
        VideoFrame::new(
            self.width,
            self.height,
            index as i64,
            self.time_base(),
            [Bytes::from(y), Bytes::from(u), Bytes::from(v)],
            [y_stride, cw_stride, cw_stride],
        )
        .expect("test pattern planes are sized from validated dimensions")
    }

    /// Renders the next frame in sequence (0, 1, 2, ...).
    pub fn next_frame(&mut self) -> VideoFrame {
        let f = self.frame(self.next_index);
        self.next_index += 1;
        f
    }

    /// Reads the burned-in counter back from a (possibly decoded, lossy) frame of the same
    /// size. Samples the centre of every glyph cell against a mid-grey threshold and matches
    /// the bitmaps exactly; returns `None` if any digit is unreadable.
    pub fn read_counter(frame: &VideoFrame) -> Option<u64> {
        Self::read_counter_luma(frame.y(), frame.stride(0), frame.width() as usize, frame.height() as usize)
    }

    /// [`Self::read_counter`] over a bare luma plane (e.g. from `ffmpeg -f rawvideo`).
    pub fn read_counter_luma(y: &[u8], stride: usize, width: usize, height: usize) -> Option<u64> {
        let layout = CounterLayout::for_size(width, height);
        if layout.scale == 0 || y.len() < stride * height {
            return None;
        }
        let mut value = 0u64;
        for i in 0..COUNTER_DIGITS {
            let mut cells = [0u8; 5];
            for (gy, bits) in cells.iter_mut().enumerate() {
                for gx in 0..3 {
                    let (x0, y0) = layout.cell_origin(i, gx, gy);
                    let (cx, cy) = (x0 + layout.scale / 2, y0 + layout.scale / 2);
                    if y[cy * stride + cx] >= 128 {
                        *bits |= 0b100 >> gx;
                    }
                }
            }
            let digit = GLYPHS.iter().position(|g| *g == cells)?;
            value = value * 10 + digit as u64;
        }
        Some(value)
    }
}

impl Iterator for TestPattern {
    type Item = VideoFrame;

    fn next(&mut self) -> Option<VideoFrame> {
        Some(self.next_frame())
    }
}

/// The counter's digits, most significant first; wraps at 10^COUNTER_DIGITS.
fn counter_digits(index: u64) -> [u8; COUNTER_DIGITS] {
    let mut out = [0u8; COUNTER_DIGITS];
    let mut n = index;
    for d in out.iter_mut().rev() {
        *d = (n % 10) as u8;
        n /= 10;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_expected_shape_and_pts() {
        let mut p = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
        let f0 = p.next_frame();
        let f1 = p.next_frame();
        assert_eq!((f0.width(), f0.height()), (320, 180));
        assert_eq!((f0.y().len(), f0.u().len(), f0.v().len()), (57_600, 14_400, 14_400));
        assert_eq!((f0.pts(), f1.pts()), (0, 1));
        assert_eq!(f1.pts_90k(), 3000);
    }

    #[test]
    fn counter_is_burned_in_and_readable() {
        let p = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
        for n in [0u64, 1, 7, 42, 123_456, 999_999] {
            assert_eq!(TestPattern::read_counter(&p.frame(n)), Some(n), "frame {n}");
        }
        // Spot-check the raster: in "000001" the last glyph's top-left cell is off, its
        // top-middle cell is on (glyph '1' = 010 / 110 / ...).
        let f = p.frame(1);
        let layout = CounterLayout::for_size(320, 180);
        assert_eq!(layout.scale, 7);
        let (x, y) = layout.cell_origin(5, 0, 0);
        assert_eq!(f.y()[(y + 3) * 320 + x + 3], BOX_Y);
        let (x, y) = layout.cell_origin(5, 1, 0);
        assert_eq!(f.y()[(y + 3) * 320 + x + 3], DIGIT_Y);
    }

    #[test]
    fn bars_scroll_between_frames() {
        let p = TestPattern::new(64, 48, Rational::new(25, 1)).unwrap();
        let (f0, f1) = (p.frame(0), p.frame(1));
        // Bottom row is below the counter box: pure bars.
        let row = |f: &VideoFrame| f.y()[47 * 64..48 * 64].to_vec();
        assert_ne!(row(&f0), row(&f1));
        // Frame 1 is frame 0 shifted left by SCROLL_PX_PER_FRAME.
        assert_eq!(row(&f1)[..60], row(&f0)[4..64]);
        // First bar is white: Y 235 -> rgb_to_y(235,235,235).
        assert_eq!(row(&f0)[0], rgb_to_y(235, 235, 235));
        assert_eq!(p.frame(5).y(), p.frame(5).y());
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(matches!(TestPattern::new(0, 10, Rational::new(30, 1)), Err(FrameError::ZeroSize { .. })));
        assert!(matches!(
            TestPattern::new(10, 10, Rational::new(0, 1)),
            Err(FrameError::InvalidFrameRate { .. })
        ));
        // Too small for a counter: still renders, but the counter cannot be read.
        let tiny = TestPattern::new(8, 8, Rational::new(30, 1)).unwrap();
        assert_eq!(TestPattern::read_counter(&tiny.frame(3)), None);
    }
}
