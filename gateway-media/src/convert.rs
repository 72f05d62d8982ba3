//! RGB24 to I420 conversion for callers that hold packed RGB frames (screenshots, image
//! crates, ML model output). BT.601 limited range, the colour space decoders assume when an
//! H.264 stream carries no VUI colour description, which is what our encoders write.

use bytes::Bytes;

use crate::frame::{check_size, chroma_size, FrameError, VideoFrame};
use crate::time::Rational;

/// Luma of one RGB pixel, BT.601 limited range (16..=235), 8-bit fixed point.
#[inline]
pub fn rgb_to_y(r: u8, g: u8, b: u8) -> u8 {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// Chroma (Cb, Cr) of one RGB colour, BT.601 limited range (16..=240), 8-bit fixed point.
#[inline]
pub fn rgb_to_uv(r: u8, g: u8, b: u8) -> (u8, u8) {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u as u8, v as u8)
}

/// Converts a packed RGB24 image (`stride` bytes per row, at least `3 * width`) into one packed
/// I420 buffer: Y (`width*height`), then U and V (`ceil(w/2)*ceil(h/2)` each).
///
/// Chroma is the colour of the 2x2 block's average RGB (a box filter: cheap and good enough for
/// the synthetic or camera content this SDK sends). Odd sizes are handled by averaging only the
/// pixels present at the right and bottom edges.
pub fn rgb24_to_i420(rgb: &[u8], width: u32, height: u32, stride: usize) -> Result<Vec<u8>, FrameError> {
    check_size(width, height)?;
    let (w, h) = (width as usize, height as usize);
    if stride < 3 * w {
        return Err(FrameError::StrideTooSmall { plane: 0, stride, min: 3 * w });
    }
    // The last row only needs its pixels, not a full stride.
    let need = stride * (h - 1) + 3 * w;
    if rgb.len() < need {
        return Err(FrameError::PlaneTooSmall { plane: 0, len: rgb.len(), need });
    }
    let (cw, ch) = chroma_size(width, height);
    let (cw, ch) = (cw as usize, ch as usize);
    let mut out = vec![0u8; w * h + 2 * cw * ch];
    let (y_plane, uv) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = uv.split_at_mut(cw * ch);

    for row in 0..h {
        let src = &rgb[row * stride..row * stride + 3 * w];
        let dst = &mut y_plane[row * w..(row + 1) * w];
        for (d, px) in dst.iter_mut().zip(src.chunks_exact(3)) {
            *d = rgb_to_y(px[0], px[1], px[2]);
        }
    }
    // Chroma: sum each 2x2 block. Whole blocks take the fast path (row pairs walked as 6-byte
    // pixel pairs, no index arithmetic); a right column or bottom row left over by an odd size
    // averages the pixels it has.
    let (full_cw, full_ch) = (w / 2, h / 2);
    for cy in 0..ch {
        let top = &rgb[2 * cy * stride..];
        let bottom = (2 * cy + 1 < h).then(|| &rgb[(2 * cy + 1) * stride..]);
        let u_row = &mut u_plane[cy * cw..(cy + 1) * cw];
        let v_row = &mut v_plane[cy * cw..(cy + 1) * cw];
        if let (true, Some(bottom)) = (cy < full_ch, bottom) {
            let pairs = top[..6 * full_cw].chunks_exact(6).zip(bottom[..6 * full_cw].chunks_exact(6));
            for ((t, b), (u, v)) in pairs.zip(u_row.iter_mut().zip(v_row.iter_mut())) {
                let sum =
                    |c: usize| u32::from(t[c]) + u32::from(t[c + 3]) + u32::from(b[c]) + u32::from(b[c + 3]);
                let avg = |c: usize| ((sum(c) + 2) / 4) as u8;
                (*u, *v) = rgb_to_uv(avg(0), avg(1), avg(2));
            }
        }
        let first_partial = if cy < full_ch { full_cw } else { 0 };
        for cx in first_partial..cw {
            let (mut r, mut g, mut b, mut n) = (0u32, 0u32, 0u32, 0u32);
            for y in (2 * cy)..(2 * cy + 2).min(h) {
                for x in (2 * cx)..(2 * cx + 2).min(w) {
                    let p = y * stride + 3 * x;
                    r += u32::from(rgb[p]);
                    g += u32::from(rgb[p + 1]);
                    b += u32::from(rgb[p + 2]);
                    n += 1;
                }
            }
            // Rounded mean of up to four pixels, always <= 255.
            let avg = |s: u32| ((s + n / 2) / n) as u8;
            (u_row[cx], v_row[cx]) = rgb_to_uv(avg(r), avg(g), avg(b));
        }
    }
    Ok(out)
}

impl VideoFrame {
    /// Builds an I420 frame from a packed RGB24 image (see [`rgb24_to_i420`]).
    pub fn from_rgb24(
        rgb: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        pts: i64,
        time_base: Rational,
    ) -> Result<Self, FrameError> {
        let i420 = rgb24_to_i420(rgb, width, height, stride)?;
        VideoFrame::from_i420(width, height, pts, time_base, Bytes::from(i420))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_map_to_bt601_limited_range() {
        assert_eq!(rgb_to_y(0, 0, 0), 16);
        assert_eq!(rgb_to_y(255, 255, 255), 235);
        assert_eq!(rgb_to_uv(0, 0, 0), (128, 128));
        assert_eq!(rgb_to_uv(255, 255, 255), (128, 128));
        // Textbook BT.601 values for pure red, green and blue (rounded).
        assert_eq!(rgb_to_y(255, 0, 0), 82);
        assert_eq!(rgb_to_uv(255, 0, 0), (90, 240));
        assert_eq!(rgb_to_y(0, 255, 0), 144);
        assert_eq!(rgb_to_uv(0, 255, 0), (54, 34));
        assert_eq!(rgb_to_y(0, 0, 255), 41);
        assert_eq!(rgb_to_uv(0, 0, 255), (240, 110));
    }

    #[test]
    fn converts_image_with_row_padding_and_averages_chroma() {
        // 2x2 image: red, red / blue, blue; stride 8 (2 bytes padding per row).
        let rgb = [
            255, 0, 0, 255, 0, 0, 9, 9, //
            0, 0, 255, 0, 0, 255, 9, 9,
        ];
        let out = rgb24_to_i420(&rgb, 2, 2, 8).unwrap();
        assert_eq!(out.len(), 6);
        assert_eq!(&out[..4], &[82, 82, 41, 41]);
        // Chroma of the average colour (128, 0, 128).
        assert_eq!((out[4], out[5]), rgb_to_uv(128, 0, 128));
    }

    /// Straightforward reference: average every 2x2 block pixel by pixel.
    fn reference_chroma(rgb: &[u8], w: usize, h: usize, stride: usize) -> Vec<(u8, u8)> {
        let mut out = Vec::new();
        for cy in 0..h.div_ceil(2) {
            for cx in 0..w.div_ceil(2) {
                let mut acc = [0u32; 3];
                let mut n = 0;
                for y in 2 * cy..(2 * cy + 2).min(h) {
                    for x in 2 * cx..(2 * cx + 2).min(w) {
                        for (c, a) in acc.iter_mut().enumerate() {
                            *a += u32::from(rgb[y * stride + 3 * x + c]);
                        }
                        n += 1;
                    }
                }
                let avg = |s: u32| ((s + n / 2) / n) as u8;
                out.push(rgb_to_uv(avg(acc[0]), avg(acc[1]), avg(acc[2])));
            }
        }
        out
    }

    #[test]
    fn fast_path_matches_reference_for_even_and_odd_sizes() {
        for (w, h) in [(16usize, 8usize), (17, 9), (5, 4), (4, 5), (1, 1)] {
            let stride = 3 * w + 5;
            let rgb: Vec<u8> = (0..stride * h).map(|i| (i * 37 % 256) as u8).collect();
            let out = rgb24_to_i420(&rgb, w as u32, h as u32, stride).unwrap();
            let c = w.div_ceil(2) * h.div_ceil(2);
            let got: Vec<(u8, u8)> = (0..c).map(|i| (out[w * h + i], out[w * h + c + i])).collect();
            assert_eq!(got, reference_chroma(&rgb, w, h, stride), "{w}x{h}");
        }
    }

    #[test]
    fn odd_sizes_and_bad_buffers() {
        let rgb = vec![255u8; 3 * 3 * 3];
        let out = rgb24_to_i420(&rgb, 3, 3, 9).unwrap();
        assert_eq!(out.len(), 9 + 2 * 4);
        assert!(out[9..].iter().all(|&c| c == 128));
        assert!(matches!(rgb24_to_i420(&rgb, 3, 3, 8), Err(FrameError::StrideTooSmall { .. })));
        assert!(matches!(
            rgb24_to_i420(&rgb[..20], 3, 3, 9),
            Err(FrameError::PlaneTooSmall { need: 27, .. })
        ));
        assert!(matches!(rgb24_to_i420(&rgb, 0, 3, 9), Err(FrameError::ZeroSize { .. })));
        let f = VideoFrame::from_rgb24(&rgb, 3, 3, 9, 1, Rational::new(1, 25)).unwrap();
        assert_eq!((f.width(), f.height(), f.pts_90k()), (3, 3, 3600));
    }
}
