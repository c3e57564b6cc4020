"""load_audio round trips through every container, downmix, resampling, and each error reason."""

import numpy as np
import pytest
import soundfile as sf

from audiolm_pt.audio import AudioError, is_silent, load_audio


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return spectrum.argmax() * rate / wave.size


@pytest.mark.parametrize(
    ("fmt", "subtype", "lossless"),
    [
        ("WAV", "PCM_16", True),
        ("FLAC", "PCM_16", True),
        ("OGG", "VORBIS", False),
        ("MP3", None, False),
    ],
)
def test_round_trip_every_container(tmp_path, fmt, subtype, lossless):
    wave = tone(440.0, 16000)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, wave, 16000, format=fmt, subtype=subtype)
    loaded = load_audio(path, 16000)
    assert loaded.dtype == np.float32
    assert loaded.ndim == 1
    assert peak_hz(loaded, 16000) == pytest.approx(440.0, abs=1.0)
    if lossless:
        assert loaded.shape == wave.shape
        np.testing.assert_allclose(loaded, wave, atol=1.0 / 32768)
    else:
        # Lossy codecs may pad by a frame or so; the level must survive.
        assert abs(loaded.size - wave.size) <= 1152
        assert np.sqrt(np.mean(loaded**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    from_bytes = load_audio(path.read_bytes(), 16000)
    np.testing.assert_array_equal(from_bytes, loaded)


def test_stereo_is_averaged(tmp_path):
    left, right = tone(440.0, 16000), tone(1000.0, 16000, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, 16000), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize(
    ("source_rate", "target_rate"), [(44100, 16000), (8000, 16000), (48000, 22050)]
)
def test_resampling_keeps_frequency_and_duration(tmp_path, source_rate, target_rate):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(1000.0, source_rate, seconds=2.0), source_rate, subtype="FLOAT")
    loaded = load_audio(path, target_rate)
    assert abs(loaded.size - 2 * target_rate) <= 1
    assert peak_hz(loaded, target_rate) == pytest.approx(1000.0, abs=0.5)
    # Away from the filter's edge transients the level is preserved.
    middle = loaded[target_rate // 2 : -target_rate // 2]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


def reason_of(source) -> AudioError:
    with pytest.raises(AudioError) as info:
        load_audio(source, 16000)
    return info.value


def test_missing_file(tmp_path):
    err = reason_of(tmp_path / "nowhere.wav")
    assert err.reason == "missing_file"
    assert "nowhere.wav" in str(err)


@pytest.mark.parametrize("garbage", [b"this is not audio at all" * 40, bytes(range(256)) * 8])
def test_garbage_bytes_are_undecodable(tmp_path, garbage):
    assert reason_of(garbage).reason == "undecodable"
    path = tmp_path / "garbage.flac"
    path.write_bytes(garbage)
    err = reason_of(path)
    assert err.reason == "undecodable"
    assert "garbage.flac" in str(err)


def test_truncated_file_is_undecodable(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, tone(440.0, 16000), 16000)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(path.read_bytes()[:30])
    assert reason_of(truncated).reason == "undecodable"


def test_zero_length_and_zero_sample_files_are_empty(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    assert reason_of(path).reason == "empty"
    assert reason_of(b"").reason == "empty"
    no_samples = tmp_path / "no_samples.wav"
    sf.write(no_samples, np.zeros(0, np.float32), 16000)
    assert no_samples.stat().st_size > 0
    assert reason_of(no_samples).reason == "empty"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    wave = tone(440.0, 16000)
    wave[123] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    assert reason_of(path).reason == "non_finite"


def test_bad_sample_rate_fails_loudly(tmp_path):
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(tmp_path / "x.wav", 0)


def test_is_silent():
    assert is_silent(np.zeros(16000, np.float32))
    assert is_silent(np.zeros(0, np.float32))
    # A sine's RMS is its amplitude / sqrt 2: -20 dBFS and -70 dBFS tones.
    loud = tone(440.0, 16000, amplitude=0.1 * np.sqrt(2))
    quiet = tone(440.0, 16000, amplitude=10 ** (-70 / 20) * np.sqrt(2))
    assert not is_silent(loud)
    assert is_silent(quiet)
    assert not is_silent(quiet, threshold_db=-80.0)
