"""Readers of source corpora in their native manifests, by format name."""

from audiolm_pt.data.builders.formats import audiocaps, clotho, demo, lhotse, wavcaps
from audiolm_pt.data.builders.records import SourceFormat

FORMATS: dict[str, SourceFormat] = {
    "demo": demo.FORMAT,
    "audiocaps": audiocaps.FORMAT,
    "clotho": clotho.FORMAT,
    "wavcaps": wavcaps.FORMAT,
    "lhotse": lhotse.FORMAT,
}
