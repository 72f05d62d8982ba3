//! Converting audio to the Opus encoder's 48 kHz: lengths, timing (an impulse stays where it
//! was), pitch, layouts (mono, stereo, 5.1) and typed errors.

use livepeer_gateway_media::audio::{AudioConverter, AudioError, AudioFrame, Tone};
use livepeer_gateway_media::Rational;

/// Converts `frames` and flushes; answers the output frames.
fn convert_all(conv: &mut AudioConverter, frames: &[AudioFrame]) -> Vec<AudioFrame> {
    let mut out: Vec<AudioFrame> = frames.iter().filter_map(|f| conv.convert(f).unwrap()).collect();
    out.extend(conv.flush().unwrap());
    out
}

fn joined(frames: &[AudioFrame]) -> Vec<f32> {
    frames.iter().flat_map(|f| f.samples().iter().copied()).collect()
}

fn rising(channel: &[f32]) -> usize {
    channel.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count()
}

#[test]
fn a_44_1_khz_tone_comes_out_at_48_khz_with_its_length_pitch_and_clock() {
    let mut tone = Tone::new(2, 44_100, 1024).unwrap();
    let input: Vec<AudioFrame> = (0..87).map(|_| tone.next_frame()).collect(); // 89,088 frames
    let mut conv = AudioConverter::new(44_100, 2, 2).unwrap();
    let out = convert_all(&mut conv, &input);
    let pcm = joined(&out);
    assert_eq!(pcm.len() / 2, 89_088 * 48_000 / 44_100, "the input's length at 48 kHz");
    // Contiguous pts on 1/48000 from 0.
    let mut next = 0;
    for f in &out {
        assert_eq!(
            (f.rate(), f.channels(), f.pts(), f.time_base()),
            (48_000, 2, next, Rational::new(1, 48_000))
        );
        next += f.len() as i64;
    }
    // One second in the middle: 440 Hz left, 660 Hz right.
    let left: Vec<f32> = pcm.iter().step_by(2).skip(24_000).take(48_000).copied().collect();
    let right: Vec<f32> = pcm.iter().skip(1).step_by(2).skip(24_000).take(48_000).copied().collect();
    assert!((rising(&left) as f32 - Tone::pitch(0)).abs() <= 1.0, "{}", rising(&left));
    assert!((rising(&right) as f32 - Tone::pitch(1)).abs() <= 1.0, "{}", rising(&right));
}

#[test]
fn an_impulse_stays_where_it_was() {
    // 2 s of silence at 32 kHz with a click at 1.000 s; it must come out at sample 48,000.
    let mut samples = vec![0.0f32; 64_000];
    samples[32_000] = 1.0;
    let frames: Vec<AudioFrame> = samples
        .chunks(640)
        .enumerate()
        .map(|(i, c)| {
            AudioFrame::new(c.to_vec(), 1, 32_000, i as i64 * 640, Rational::new(1, 32_000)).unwrap()
        })
        .collect();
    let mut conv = AudioConverter::new(32_000, 1, 1).unwrap();
    let pcm = joined(&convert_all(&mut conv, &frames));
    assert_eq!(pcm.len(), 96_000);
    let peak = pcm.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert!(peak.abs_diff(48_000) <= 1, "the click moved to sample {peak}");
}

#[test]
fn the_first_frame_sets_the_clock() {
    // A source whose first frame is at 10 s (90 kHz clock): output starts at 10 s on 1/48000.
    let frame = AudioFrame::new(vec![0.1; 960 * 2], 2, 48_000, 900_000, Rational::new(1, 90_000)).unwrap();
    let mut conv = AudioConverter::new(48_000, 2, 2).unwrap();
    let out = conv.convert(&frame).unwrap().unwrap();
    assert_eq!(out.pts(), 480_000);
    assert_eq!(out.samples(), frame.samples(), "same rate and layout: untouched");
}

#[test]
fn layouts_fold_as_they_should() {
    let at = |samples: Vec<f32>, channels| {
        AudioFrame::new(samples, channels, 48_000, 0, Rational::new(1, 48_000)).unwrap()
    };
    let mut up = AudioConverter::new(48_000, 1, 2).unwrap();
    assert_eq!(up.convert(&at(vec![0.5, -0.25], 1)).unwrap().unwrap().samples(), [0.5, 0.5, -0.25, -0.25]);
    let mut down = AudioConverter::new(48_000, 2, 1).unwrap();
    assert_eq!(down.convert(&at(vec![0.5, 0.25], 2)).unwrap().unwrap().samples(), [0.375]);
    // 5.1: FL FR FC LFE BL BR; the LFE is left out, centre and surrounds at -3 dB.
    let mut fold = AudioConverter::new(48_000, 6, 2).unwrap();
    let out = fold.convert(&at(vec![0.1, 0.2, 0.4, 1.0, 0.3, 0.0], 6)).unwrap().unwrap();
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert!(
        (out.samples()[0] - (0.1 + h * 0.7)).abs() < 1e-6
            && (out.samples()[1] - (0.2 + h * 0.4)).abs() < 1e-6
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    assert_eq!(AudioConverter::new(44_100, 2, 3).unwrap_err(), AudioError::Channels(3));
    assert_eq!(AudioConverter::new(44_100, 9, 2).unwrap_err(), AudioError::Channels(9));
    assert!(matches!(AudioConverter::new(0, 2, 2), Err(AudioError::Rate { got: 0, .. })));
    assert_eq!(
        AudioFrame::new(vec![0.0; 9], 9, 48_000, 0, Rational::new(1, 48_000)).unwrap_err(),
        AudioError::Channels(9)
    );
    let mut conv = AudioConverter::new(44_100, 2, 2).unwrap();
    let other = Tone::new(2, 48_000, 960).unwrap().next_frame();
    assert!(conv.convert(&other).is_err(), "a frame of another rate");
}
