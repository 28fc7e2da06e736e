//! From a configuration to everything training and prediction share: the prepared data, the
//! split, the vocabulary, the perturbation ids, the co-expression mask and the model settings.
//! Both `train` and `predict` build it the same way, so a run directory needs to store only
//! its resolved configuration.

use std::path::Path;

use ccfm_data::coexpression::{
    cached_coexpression_mask, coexpression_mask, streamed_coexpression_mask,
};
use ccfm_data::{
    prepare, CoexpressionConfig, Condition, GeneVocab, PrepareOptions, PreparedData, SchemaOptions,
    Split, SplitConfig, SplitMethod, TargetSum,
};
use ccfm_model::{CascadedFlowModelConfig, LatentStreamConfig, PerturbationKind};
use ccfm_scgpt::{ExtractorConfig, FrozenScgptExtractor, ScgptArgs, ScgptModel};

use crate::config::{closest, RunConfig, SplitChoice};
use crate::error::TrainError;

/// Everything derived from the configuration and the data.
pub struct Experiment {
    pub config: RunConfig,
    pub data: PreparedData,
    pub split: Split,
    /// The model's token vocabulary (specials + genes [+ unmeasured perturbed genes]).
    pub vocab: GeneVocab,
    pub kind: PerturbationKind,
    /// Drug runs: scDFM's `perturbation_dict` (sorted tokens + control); the pert ids index it.
    pub pert_dict: Vec<String>,
    /// Vocabulary id of each prepared gene column.
    pub gene_ids: Vec<i64>,
    /// `(m, m)` blocked flags of the gene encoder's mask, `m = vocab.len()`.
    pub mask: Vec<bool>,
    /// Width of the scGPT features (CCFM), read from the model's args.json.
    pub scgpt_dim: Option<usize>,
}

/// The data-reading options of a configuration.
pub fn prepare_options(cfg: &RunConfig) -> PrepareOptions {
    let d = &cfg.data;
    let element = match d.layer.as_str() {
        "auto" => None,
        "X" => Some("X".to_string()),
        l => Some(format!("layers/{}", l.trim_start_matches("layers/"))),
    };
    PrepareOptions {
        schema: SchemaOptions {
            schema: d.schema.schema(),
            dataset: (!d.dataset.is_empty()).then(|| d.dataset.clone()),
        },
        element,
        scale: d.scale.scale(),
        target_sum: if d.target_sum > 0.0 {
            TargetSum::Fixed(d.target_sum)
        } else {
            TargetSum::Median
        },
        n_top_genes: (d.n_top_genes > 0).then_some(d.n_top_genes),
        force_include_perturbed: d.force_include_perturbed,
        unmeasured: d.unmeasured_perturbations,
        max_memory: d.max_memory,
        block_cells: d.block_cells,
    }
}

/// The split settings of a configuration.
pub fn split_config(cfg: &RunConfig) -> SplitConfig {
    let d = &cfg.data;
    SplitConfig {
        method: match &d.split {
            SplitChoice::Additive => SplitMethod::Additive,
            SplitChoice::Combinations => SplitMethod::Combinations,
            SplitChoice::File(path) => SplitMethod::User(path.clone()),
        },
        fold: d.fold,
        seed: d.split_seed,
        test_fraction: d.test_fraction,
        holdout_doubles: d.holdout_doubles,
        val_fraction: d.val_fraction,
    }
}

impl Experiment {
    /// Read and prepare the data, make the split and the mask (cached in `cache_dir` when one is
    /// given; the CLI gives `$CCFM_CACHE_DIR` or `~/.cache/ccfm`), and read
    /// the scGPT settings. `say` receives progress lines.
    pub fn new(
        config: &RunConfig,
        cache_dir: Option<&Path>,
        say: &mut dyn FnMut(String),
    ) -> Result<Self, TrainError> {
        let opts = prepare_options(config);
        let data = prepare(&config.data.path, &opts)?;
        let r = &data.report;
        say(format!(
            "data: {} cells x {} genes ({} in the file; {:?} values{}) in {:.1} s",
            data.table.n_cells(),
            data.n_genes(),
            r.genes_in_file,
            r.scale,
            r.target_sum
                .map(|t| format!(", normalised to {t}"))
                .unwrap_or_default(),
            r.seconds
        ));
        say(format!("expression: {}", r.storage));
        let split = Split::make(&data.table, &split_config(config), &config.data.path)?;
        say(format!(
            "split {} fold {}: {} train, {} validation, {} test conditions",
            split.method,
            split.fold,
            split.train.len(),
            split.val.len(),
            split.test.len()
        ));
        let kind = config
            .model
            .perturbation
            .kind()
            .unwrap_or(match data.table.kind {
                ccfm_data::Perturbagen::Gene => PerturbationKind::Crispr,
                ccfm_data::Perturbagen::Drug => PerturbationKind::Drug,
            });
        let vocab = data.vocabulary();
        let pert_dict = data.perturbation_dict();
        let gene_ids = data
            .genes
            .iter()
            .map(|g| {
                vocab
                    .id(g)
                    .expect("every prepared gene is in the vocabulary") as i64
            })
            .collect();
        let mask = Self::mask(config, &data, &split, &vocab, cache_dir)?;
        let scgpt_dim = if config.latent.enabled {
            let args = ScgptArgs::read(&config.latent.scgpt_dir.join("args.json"))?;
            Some(args.embsize)
        } else {
            None
        };
        Ok(Self {
            config: config.clone(),
            data,
            split,
            vocab,
            kind,
            pert_dict,
            gene_ids,
            mask,
            scgpt_dim,
        })
    }

    /// scDFM's mask from the training cells (training conditions and controls), extended to
    /// vocabulary-only tokens (unmeasured perturbed genes), which attend only to themselves.
    fn mask(
        config: &RunConfig,
        data: &PreparedData,
        split: &Split,
        vocab: &GeneVocab,
        cache_dir: Option<&Path>,
    ) -> Result<Vec<bool>, TrainError> {
        let mut trains = vec![false; data.table.conditions.len()];
        trains[ccfm_data::PerturbationTable::CONTROL_INDEX] = true;
        for i in split
            .train
            .iter()
            .filter_map(|n| data.table.condition_index(n))
        {
            trains[i] = true;
        }
        let rows: Vec<usize> = (0..data.table.n_cells())
            .filter(|&c| trains[data.table.cell_condition[c]])
            .collect();
        let cfg = CoexpressionConfig {
            top_k: config.data.coexpression_top_k,
            use_negative_edge: config.data.use_negative_edge,
            n_specials: 4,
        };
        let measured = match (data.x.in_memory(), cache_dir) {
            (Some(all), dir) => {
                let g = data.n_genes();
                let mut x = Vec::with_capacity(rows.len() * g);
                for &r in &rows {
                    x.extend(all[r * g..(r + 1) * g].iter().map(|&v| v as f64));
                }
                match dir {
                    Some(dir) => {
                        cached_coexpression_mask(dir, &x, rows.len(), &data.genes, &cfg)?.0
                    }
                    None => coexpression_mask(&x, rows.len(), &data.genes, &cfg),
                }
            }
            (None, dir) => {
                let mut passes = |visit: &mut dyn FnMut(&[f64])| {
                    for chunk in rows.chunks(4096) {
                        let x: Vec<f64> = data.rows(chunk)?.iter().map(|&v| v as f64).collect();
                        visit(&x);
                    }
                    Ok(())
                };
                streamed_coexpression_mask(&mut passes, rows.len(), &data.genes, &cfg, dir)?.0
            }
        };
        let measured_vocab = GeneVocab::from_genes(&data.genes);
        let mm = measured_vocab.len();
        if mm == vocab.len() {
            return Ok(measured);
        }
        let m = vocab.len();
        let index: Vec<Option<usize>> = (0..m)
            .map(|i| measured_vocab.id(vocab.token(i).expect("id in range")))
            .collect();
        let mut out = vec![true; m * m];
        for i in 0..m {
            for j in 0..m {
                out[i * m + j] = match (index[i], index[j]) {
                    (Some(a), Some(b)) => measured[a * mm + b],
                    _ => i != j,
                };
            }
        }
        Ok(out)
    }

    /// The network's settings.
    pub fn model_config(&self) -> CascadedFlowModelConfig {
        let m = &self.config.model;
        let ntoken = match self.kind {
            PerturbationKind::Crispr => self.vocab.len(),
            PerturbationKind::Drug => self.vocab.len().max(self.pert_dict.len()),
        };
        CascadedFlowModelConfig::new(ntoken, self.kind)
            .with_d_model(m.d_model)
            .with_nhead(m.nhead)
            .with_nlayers(m.nlayers)
            .with_dropout(m.dropout)
            .with_mlp_ratio(m.mlp_ratio)
            .with_latent(self.scgpt_dim.map(|d| {
                LatentStreamConfig::new()
                    .with_scgpt_dim(d)
                    .with_bottleneck_dim(self.config.latent.bottleneck_dim)
                    .with_dh_depth(self.config.latent.dh_depth)
            }))
    }

    /// The [`Condition::SLOTS`] perturbation token ids of a condition.
    pub fn pert_ids(&self, condition: &Condition) -> Result<[i64; Condition::SLOTS], TrainError> {
        self.tokenizer().ids(condition)
    }

    /// The model's perturbation tokens: gene vocabulary ids (CRISPR) or positions in the
    /// drug dictionary.
    pub fn tokenizer(&self) -> PerturbationTokenizer<'_> {
        PerturbationTokenizer { exp: self }
    }

    /// Parse condition names (`A+B`, `A`), each token checked.
    pub fn parse_conditions(&self, names: &[String]) -> Result<Vec<Condition>, TrainError> {
        names
            .iter()
            .map(|n| {
                let c = Condition::parse(n.trim());
                if c.is_control() {
                    return Err(TrainError::Request(format!(
                        "`{n}` is the control; name perturbations (e.g. A+B)"
                    )));
                }
                let slots = Condition::SLOTS;
                if c.tokens.len() > slots {
                    return Err(TrainError::Request(format!(
                        "`{n}` names {} perturbations; the model takes at most {slots} per \
                         condition (A or A+B)",
                        c.tokens.len()
                    )));
                }
                self.pert_ids(&c)?;
                Ok(c)
            })
            .collect()
    }

    /// The frozen scGPT extractor over the model's genes (CCFM runs).
    pub fn extractor<B: burn::tensor::backend::Backend>(
        &self,
        device: &B::Device,
    ) -> Result<Option<FrozenScgptExtractor<B>>, TrainError> {
        if !self.config.latent.enabled {
            return Ok(None);
        }
        let l = &self.config.latent;
        let model = ScgptModel::<B>::from_dir(&l.scgpt_dir, device)?;
        let cfg = ExtractorConfig {
            stats_batches: l.norm_warmup_batches,
            clamp: (l.clamp > 0.0).then_some(l.clamp as f32),
            target_std: l.target_std as f32,
            tie_break: l.binning,
            seed: self.config.train.seed,
        };
        Ok(Some(FrozenScgptExtractor::new(
            model,
            &self.data.genes,
            cfg,
        )?))
    }
}

/// Conditions to perturbation token ids, with a did-you-mean for unknown tokens.
pub struct PerturbationTokenizer<'a> {
    exp: &'a Experiment,
}

impl PerturbationTokenizer<'_> {
    /// The ids of a condition's slots (`control` in an empty one).
    pub fn ids(&self, condition: &Condition) -> Result<[i64; Condition::SLOTS], TrainError> {
        let mut out = [0i64; Condition::SLOTS];
        for (o, token) in out.iter_mut().zip(&condition.slots()) {
            let id = match self.exp.kind {
                PerturbationKind::Crispr => self.exp.vocab.id(token),
                PerturbationKind::Drug => self.exp.pert_dict.iter().position(|t| t == token),
            };
            *o = id.ok_or_else(|| self.unknown(token, &condition.name()))? as i64;
        }
        Ok(out)
    }

    /// The perturbations the model knows.
    pub fn known(&self) -> Vec<&str> {
        match self.exp.kind {
            PerturbationKind::Crispr => self.exp.vocab.genes().iter().map(String::as_str).collect(),
            PerturbationKind::Drug => self.exp.pert_dict.iter().map(String::as_str).collect(),
        }
    }

    fn unknown(&self, token: &str, condition: &str) -> TrainError {
        let known = self.known();
        let hint = closest(token, known.iter().copied())
            .map(|h| format!("; did you mean `{h}`?"))
            .unwrap_or_default();
        TrainError::Request(format!(
            "condition `{condition}`: `{token}` is not a perturbation this model knows{hint} \
             (a {} model knows the {} tokens of {})",
            match self.exp.kind {
                PerturbationKind::Crispr => "gene",
                PerturbationKind::Drug => "drug",
            },
            known.len(),
            self.exp.config.data.path.display()
        ))
    }
}
