//! Tensor layers of CCFM, each a Burn `Config` + `Module` pair generic over the backend, with
//! field names that mirror the reference checkpoints: the scDFM blocks (value and gene
//! encoders, timestep embedder, GeneadaLN, differential attention, perceiver blocks, expression
//! decoder) and the latent stream (latent embedder and decoder).
//!
//! The layers are written and parity-tested in the issue "ccfm-layers + ccfm-model".
