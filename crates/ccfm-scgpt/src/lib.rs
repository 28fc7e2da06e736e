//! A Burn port of the scGPT encoder: vocabulary and `args.json`, checkpoint loading
//! (`best_model.pt` and `.safetensors`), binning and tokenisation, and the
//! `FrozenScGPTExtractor` that turns expression into per-gene latent features.
//!
//! Written and parity-tested in the issue "ccfm-scgpt".
