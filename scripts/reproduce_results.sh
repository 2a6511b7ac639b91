#!/usr/bin/env bash
# Rebuild the figures of docs/results.md: one `sclc grid` per arm, then `sclc report`.
#
#   scripts/reproduce_results.sh                  # the page's settings (hours on 2 CPU cores)
#   scripts/reproduce_results.sh --tiny           # every section on a tiny setting (minutes; a test runs it)
#   scripts/reproduce_results.sh --only gillman_fig2 --only bertrand_prop1
#   scripts/reproduce_results.sh --out runs/results --jobs 4
#
# Each section writes runs/results/<section>/<arm>/ (one run folder per point, resumable: run the
# same command again after an interruption) and runs/results/<section>/report/ (PNG + report.html).
# Sections: gillman_fig2 bertrand_prop1 modes bertrand_fig1 bertrand_fig2 gillman_mnist motion
#           linear_regression gmm_em vae lm_finetune lm_pretrain
#           conformers (docs/molecules.md)
#           sampling_bias selection_bias curation verification golden_ratio (docs/beyond.md)
#           neon (docs/model_correction.md)
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=full
OUT=runs/results
JOBS=2
ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tiny) SCALE=tiny ;;
    --out) OUT=$2; shift ;;
    --jobs) JOBS=$2; shift ;;
    --only) ONLY+=("$2"); shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "reproduce_results.sh: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
  esac
  shift
done
SCLC=${SCLC:-.venv/bin/sclc}
export WANDB_MODE=${WANDB_MODE:-disabled}
# Every point: no W&B, no checkpoint files (a rerun of an interrupted grid starts its unfinished points over).
COMMON=(--trainer.enable_checkpointing false)

# pick FULL TINY: the value for this scale
pick() { if [ "$SCALE" = tiny ]; then echo "$2"; else echo "$1"; fi; }

wanted() {
  [ ${#ONLY[@]} -eq 0 ] && return 0
  local name
  for name in "${ONLY[@]}"; do [ "$name" = "$1" ] && return 0; done
  return 1
}

# grid SECTION ARM RECIPE [grid options...] -- [fit overrides...]
grid() {
  local section=$1 arm=$2 recipe=$3
  shift 3
  local options=() overrides=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do options+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  overrides=("$@")
  echo "== $section / $arm"
  local code=0
  "$SCLC" grid --config "$recipe" "${options[@]}" --jobs "$JOBS" --out "$OUT/$section/$arm" \
    -- "${COMMON[@]}" "${overrides[@]}" || code=$?
  if [ "$code" -ne 0 ]; then
    echo "reproduce_results.sh: $section / $arm: sclc grid exited with $code (see $OUT/$section/$arm/runs.csv)" >&2
    exit "$code"
  fi
}

# report SECTION NAME FOLDERS...: figures, report.html and summary.csv in OUT/SECTION/NAME
report() {
  local section=$1 name=$2
  shift 2
  "$SCLC" report "$@" --out "$OUT/$section/$name"
}

timed() {
  local section=$1 start
  wanted "$section" || return 0
  start=$(date +%s)
  "section_$section"
  echo "== $section: $(( $(date +%s) - start )) s" | tee -a "$OUT/times.txt"
}

GAMMAS=$(pick 0,0.01,0.03,0.1,0.3,1,2,5 0,1)

# Gillman et al. Fig. 2: W2 against the generation for the gamma grid, three settings.
section_gillman_fig2() {
  local gens seeds
  gens=$(pick 500 3)
  seeds=$(pick 0-9 0-1)
  local fast=(--loop.generations "$gens" --data.init_args.batch_size 20000)  # exact fit: one batch
  local real_targets=(--config recipes/gaussian_toy_real_targets.yaml)
  grid gillman_fig2 accumulate recipes/gaussian_toy.yaml "${real_targets[@]}" \
    --set "loop.corrector_kwargs.strength=$GAMMAS" --seeds "$seeds" -- "${fast[@]}"
  grid gillman_fig2 augment recipes/gaussian_toy.yaml "${real_targets[@]}" \
    --set "loop.corrector_kwargs.strength=$GAMMAS" --seeds "$seeds" -- "${fast[@]}" --loop.mode augment
  grid gillman_fig2 accumulate_true_target recipes/gaussian_toy.yaml \
    --set "loop.corrector_kwargs.strength=$GAMMAS" --seeds "$seeds" -- "${fast[@]}"
  local arm
  for arm in accumulate augment accumulate_true_target; do
    report gillman_fig2 "report_$arm" "$OUT/gillman_fig2/$arm"
  done
  "${PYTHON:-$(dirname "$SCLC")/python}" scripts/gillman_gamma.py "$OUT/gillman_fig2/accumulate" \
    "$OUT/gillman_fig2/augment" "$OUT/gillman_fig2/accumulate_true_target" --out "$OUT/gillman_fig2/gamma"
}

# Bertrand et al. Prop. 1: a Gaussian refitted on its own n samples, sigma_t against alpha(n)^t sigma_0.
section_bertrand_prop1() {
  local gens seeds
  gens=$(pick 100 3)
  seeds=$(pick 0-19 0-1)
  grid bertrand_prop1 replace recipes/gaussian_collapse.yaml --set data.init_args.n=10,50 --seeds "$seeds" \
    -- --loop.generations "$gens"
  grid bertrand_prop1 real_only recipes/gaussian_collapse.yaml --seeds "$seeds" \
    -- --loop.generations "$gens" --loop.synthetic_fraction 0 --loop.mode augment
  report bertrand_prop1 report "$OUT/bertrand_prop1/replace" "$OUT/bertrand_prop1/real_only"
}

# Replace vs accumulate vs accumulate-subsample (Gerstgrasser et al.; Kazdan et al.).
section_modes() {
  local gens seeds
  gens=$(pick 100 3)
  seeds=$(pick 0-19 0-1)
  grid modes modes recipes/gaussian_accumulate.yaml --set loop.mode=replace,accumulate --seeds "$seeds" \
    -- --loop.generations "$gens"
  grid modes subsample recipes/gaussian_accumulate.yaml --seeds "$seeds" \
    -- --loop.generations "$gens" --loop.mode_kwargs.max_synthetic 10
  report modes report "$OUT/modes/modes" "$OUT/modes/subsample"
  # the long runs: the late slope of W2^2, accumulate vs the two subsample variants (Kazdan et al.'s: n from the whole pool)
  local long=(--loop.generations "$(pick 300 4)")
  grid modes long_accumulate recipes/gaussian_accumulate.yaml --seeds "$(pick 0-59 0-1)" \
    -- "${long[@]}" --data.init_args.batch_size 10000
  grid modes long_subsample recipes/gaussian_accumulate.yaml --seeds "$(pick 0-59 0-1)" \
    -- "${long[@]}" --data.init_args.batch_size 10000 --loop.mode_kwargs.max_synthetic 10
  grid modes long_pool_subsample recipes/gaussian_accumulate.yaml --seeds "$(pick 0-59 0-1)" \
    -- "${long[@]}" --loop.images_per_generation 10
  report modes report_long "$OUT/modes/long_accumulate" "$OUT/modes/long_subsample" "$OUT/modes/long_pool_subsample"
  "${PYTHON:-$(dirname "$SCLC")/python}" scripts/late_slope.py "$OUT/modes/long_accumulate" "$OUT/modes/long_subsample" \
    "$OUT/modes/long_pool_subsample" --metric w2 --square --start "$(pick 50 0)" --window "$(pick 50 1)" \
    --out "$OUT/modes/report_long/slope_w2sq.csv"
}

# Bertrand et al. Figs. 1 and 2: fully synthetic (replace) vs lambda = 1 (augment), 10 generations.
# bertrand_points SECTION RECIPE TINY_INITIAL TINY_BUDGET
bertrand_points() {
  local section=$1 recipe=$2 budget=()
  [ "$SCALE" = tiny ] && budget=(--loop.initial_images "$3" --loop.images_per_generation "$4")
  grid "$section" arms "$recipe" --set loop.mode=replace,augment --seeds "$(pick 0-2 0)" \
    -- --loop.generations "$(pick 10 2)" "${budget[@]}"
  report "$section" report "$OUT/$section/arms"
}
section_bertrand_fig1() { bertrand_points bertrand_fig1 recipes/eight_gaussians_ddpm.yaml 2048 1024; }  # DDPM, 8 Gaussians
section_bertrand_fig2() { bertrand_points bertrand_fig2 recipes/two_moons_cfm.yaml 1024 512; }  # flow matching, two moons

# Gillman et al.'s MNIST experiment on the 8x8 digits: KMeans vs none vs real only.
section_gillman_mnist() {
  local gens seeds extra=()
  gens=$(pick 6 1)
  seeds=$(pick 0-1 0)
  [ "$SCALE" = tiny ] && extra=(--loop.initial_images 256 --loop.images_per_generation 128)
  grid gillman_mnist loops recipes/digits_ddpm.yaml --set loop.corrector=kmeans,null --seeds "$seeds" \
    -- --loop.generations "$gens" "${extra[@]}"
  grid gillman_mnist real_only recipes/digits_ddpm.yaml --seeds "$seeds" \
    -- --loop.generations "$gens" --loop.synthetic_fraction 0 "${extra[@]}"
  report gillman_mnist report "$OUT/gillman_mnist/loops" "$OUT/gillman_mnist/real_only"
}

# Gillman et al. section 6: motion, physics correction vs none vs real only (small CPU variant).
section_motion() {
  local gens seeds
  gens=$(pick 5 1)
  seeds=$(pick 0-1 0)
  local small=(--config recipes/small/motion_physics.yaml)
  grid motion loops recipes/motion_physics.yaml "${small[@]}" --set loop.synthetic_fraction=0.5,1.0 \
    --set loop.corrector=null,physics --seeds "$seeds" -- --loop.generations "$gens"
  grid motion real_only recipes/motion_physics.yaml "${small[@]}" --set loop.synthetic_fraction=0 \
    --seeds "$seeds" -- --loop.generations "$gens"
  report motion report "$OUT/motion/loops" "$OUT/motion/real_only"
  # lambda = 1 with enough seeds to separate the arms (24 each), and smoother tracking targets (12)
  grid motion seeds recipes/motion_physics.yaml "${small[@]}" --set loop.corrector=null,physics \
    --seeds "$(pick 0-23 0-1)" -- --loop.generations "$gens" --loop.synthetic_fraction 1.0
  grid motion seeds_real_only recipes/motion_physics.yaml "${small[@]}" --seeds "$(pick 0-23 0-1)" \
    -- --loop.generations "$gens" --loop.synthetic_fraction 0
  grid motion smooth recipes/motion_physics.yaml "${small[@]}" --set loop.corrector_kwargs.smooth=3 \
    --seeds "$(pick 0-11 0-1)" -- --loop.generations "$gens" --loop.synthetic_fraction 1.0 --loop.corrector physics
  "${PYTHON:-$(dirname "$SCLC")/python}" scripts/paired_metrics.py "$OUT/motion/seeds" "$OUT/motion/seeds_real_only" \
    "$OUT/motion/smooth" --metric fid --metric penetration --metric diversity --generation "$gens" \
    --out "$OUT/motion/paired.csv"
}

# The other model families (docs/collapse.md).
section_linear_regression() {
  grid linear_regression modes recipes/linear_regression.yaml --set loop.mode=replace,accumulate \
    --seeds "$(pick 0-19 0-1)" -- --loop.generations "$(pick 100 3)"
  report linear_regression report "$OUT/linear_regression/modes"
}

section_gmm_em() {
  grid gmm_em em recipes/gmm_em.yaml --seeds "$(pick 0-2 0)" -- --loop.generations "$(pick 2000 3)"
  report gmm_em report "$OUT/gmm_em/em"
}

section_vae() {
  local extra=()
  [ "$SCALE" = tiny ] && extra=(--config recipes/small/vae_replace_accumulate.yaml --loop.generations 1)
  grid vae modes recipes/vae_replace_accumulate.yaml --set loop.mode=replace,accumulate \
    --seeds "$(pick 0-2 0)" -- "${extra[@]}"
  report vae report "$OUT/vae/modes"
  # six seeds, and Gerstgrasser et al.'s accumulate: 20 passes over all its data each generation
  local passes=20
  [ "$SCALE" = tiny ] && passes=1
  grid vae fixed recipes/vae_replace_accumulate.yaml --set loop.mode=replace,accumulate \
    --seeds "$(pick 0-5 0)" -- "${extra[@]}"
  grid vae passes recipes/vae_replace_accumulate.yaml --seeds "$(pick 0-5 0)" -- "${extra[@]}" \
    --loop.mode accumulate --loop.images_per_generation null --loop.passes_per_generation "$passes"
  report vae report_passes "$OUT/vae/fixed" "$OUT/vae/passes"
}

section_lm_finetune() {
  local extra=()
  [ "$SCALE" = tiny ] && extra=(--config recipes/small/lm_finetune.yaml --loop.generations 1)
  # one folder per arm, 4 seeds, 12 generations: each generation anew from the initial state (the
  # recipe, as the paper), and continuing from the previous generation (the ablation)
  local start keep
  for start in initial previous; do
    for keep in 0 0.1; do
      grid lm_finetune "${start}_keep${keep}" recipes/lm_finetune.yaml --seeds "$(pick 0-3 0)" -- "${extra[@]}" \
        --loop.start_from "$start" --loop.mode_kwargs.keep_real "$keep"
    done
  done
  local late=(--start 6 --window 3)
  [ "$SCALE" = tiny ] && late=(--start 0 --window 1)
  for start in initial previous; do
    report lm_finetune "report_$start" "$OUT/lm_finetune/${start}_keep0" "$OUT/lm_finetune/${start}_keep0.1"
    "${PYTHON:-$(dirname "$SCLC")/python}" scripts/late_slope.py "$OUT/lm_finetune/${start}_keep0" \
      "$OUT/lm_finetune/${start}_keep0.1" --metric test_perplexity "${late[@]}" --out "$OUT/lm_finetune/slope_$start.csv"
  done
}

section_lm_pretrain() {
  local extra=()
  [ "$SCALE" = tiny ] && extra=(--config recipes/small/lm_pretrain.yaml --loop.generations 1)
  grid lm_pretrain modes recipes/lm_pretrain.yaml --set loop.mode=replace,accumulate \
    --seeds "$(pick 0-2 0)" -- "${extra[@]}"
  report lm_pretrain report "$OUT/lm_pretrain/modes"
}

# Gerstgrasser et al.: conformer diffusion, replace vs accumulate, and replace + MMFF correction
# (small CPU variant, about 24 minutes per run, two at a time; docs/molecules.md).
section_conformers() {
  local small=(--config recipes/small/conformer_diffusion.yaml) extra=()
  [ "$SCALE" = tiny ] && extra=(--loop.generations 1 --loop.initial_images 640 --loop.images_per_generation 320)
  grid conformers modes recipes/conformer_diffusion.yaml "${small[@]}" --set loop.mode=replace,accumulate \
    --seeds "$(pick 0-1 0)" -- "${extra[@]}"
  grid conformers forcefield recipes/conformer_diffusion.yaml "${small[@]}" --seeds "$(pick 0-1 0)" \
    -- "${extra[@]}" --loop.corrector forcefield
  report conformers report "$OUT/conformers/modes" "$OUT/conformers/forcefield"
}

# Beyond the sources (docs/beyond.md): sampling bias, selection, curation, verification.
section_sampling_bias() {
  grid sampling_bias tau recipes/sampling_bias_gaussian.yaml --set loop.sample_kwargs.temperature=0.9,1 \
    --seeds "$(pick 0-199 0-1)" -- --loop.generations "$(pick 30 3)"
  report sampling_bias report "$OUT/sampling_bias/tau"
}

section_selection_bias() {
  local small=()
  [ "$SCALE" = tiny ] && small=(--config recipes/small/selection_bias.yaml --loop.generations 3)
  grid selection_bias selection recipes/selection_bias.yaml --set loop.mode=accumulate,replace \
    --seeds "$(pick 0-4 0)" -- "${small[@]}"
  grid selection_bias accumulate recipes/selection_bias.yaml --seeds "$(pick 0-4 0)" \
    -- "${small[@]}" --loop.corrector null --loop.corrector_kwargs null
  report selection_bias report "$OUT/selection_bias/selection" "$OUT/selection_bias/accumulate"
  # the Laplace family (Qiao et al.'s non-Gaussian rows), n = 100, 300, 500
  [ "$SCALE" = tiny ] && small=(--config recipes/small/selection_bias_laplace.yaml --loop.generations 3)
  grid selection_bias laplace_selection recipes/selection_bias_laplace.yaml --set loop.mode=accumulate,replace \
    --set data.init_args.n="$(pick 100,300,500 100)" --seeds "$(pick 0-4 0)" -- "${small[@]}"
  grid selection_bias laplace_accumulate recipes/selection_bias_laplace.yaml \
    --set data.init_args.n="$(pick 100,300,500 100)" --seeds "$(pick 0-4 0)" \
    -- "${small[@]}" --loop.corrector null --loop.corrector_kwargs null
  grid selection_bias laplace_moments recipes/selection_bias_laplace.yaml \
    --set data.init_args.n="$(pick 100,300,500 100)" --seeds "$(pick 0-4 0)" \
    -- "${small[@]}" --model.init_args.estimator moments
  report selection_bias report_laplace "$OUT/selection_bias/laplace_selection" "$OUT/selection_bias/laplace_accumulate" \
    "$OUT/selection_bias/laplace_moments"
  # the Gaussian mixture (Qiao et al.'s GMM rows), n = 100, 300, 500; and an overlapping mixture at n = 300
  [ "$SCALE" = tiny ] && small=(--config recipes/small/selection_bias_gmm.yaml --loop.generations 3)
  grid selection_bias gmm_selection recipes/selection_bias_gmm.yaml --set loop.mode=accumulate,replace \
    --set data.init_args.n="$(pick 100,300,500 100)" --seeds "$(pick 0-4 0)" -- "${small[@]}"
  grid selection_bias gmm_accumulate recipes/selection_bias_gmm.yaml \
    --set data.init_args.n="$(pick 100,300,500 100)" --seeds "$(pick 0-4 0)" \
    -- "${small[@]}" --loop.corrector null --loop.corrector_kwargs null
  grid selection_bias gmm_overlapping recipes/selection_bias_gmm.yaml --set loop.mode=accumulate,replace \
    --seeds "$(pick 0-4 0)" -- "${small[@]}" --data.init_args.means '[[-1, 0], [1, 0]]' --data.init_args.stds '[1, 1]'
  report selection_bias report_gmm "$OUT/selection_bias/gmm_selection" "$OUT/selection_bias/gmm_accumulate" \
    "$OUT/selection_bias/gmm_overlapping"
}

# He, Xu & Cheng 2025: the stationary error of the weighted mean against w, k = 0.5, 1, 2 (each
# k's grid holds w*, the unweighted w = 1/(1 + k) and a grid of w), then the figure and table.
section_golden_ratio() {
  local k weights
  for k in 0.5 1 2; do
    case $k in
      0.5) weights=0.4,0.5,0.6,0.666667,0.7,0.732051,0.8,0.9,1 ;;
      1) weights=0.3,0.4,0.5,0.6,0.618034,0.7,0.8,0.9,1 ;;
      2) weights=0.2,0.3,0.333333,0.4,0.5,0.6,0.7,0.8,1 ;;
    esac
    [ "$SCALE" = tiny ] && weights=0.5,1
    grid golden_ratio "k=$k" recipes/golden_ratio.yaml --set "loop.mode_kwargs.real_weight=$weights" \
      --seeds "$(pick 0-39 0)" -- --loop.synthetic_fraction "$k" --loop.generations "$(pick 30 3)"
  done
  "${PYTHON:-$(dirname "$SCLC")/python}" scripts/golden_ratio.py "$OUT"/golden_ratio/k=* \
    --burn-in "$(pick 10 1)" --out "$OUT/golden_ratio/figure"
}

# Neon on eight Gaussians with a 10-step sampler: the default fine-tuning of theta_s and ten times
# more, 8 seeds each, then the test gain paired by seed.
section_neon() {
  local python=${PYTHON:-$(dirname "$SCLC")/python} tiny=()
  [ "$SCALE" = tiny ] && tiny=(--epochs 20 --weights 0 0.5 --eval-points 500)
  "$python" scripts/neon_sweep.py --out "$OUT/neon/default" --seeds $(pick "0 1 2 3 4 5 6 7" "0 1") "${tiny[@]}" \
    --samples "$(pick 2000 200)" --finetune-steps "$(pick 100 5)"
  "$python" scripts/neon_sweep.py --out "$OUT/neon/long" --seeds $(pick "0 1 2 3 4 5 6 7" "0 1") "${tiny[@]}" \
    --samples "$(pick 20000 400)" --finetune-steps "$(pick 1000 10)"
  "$python" scripts/neon_gain.py "$OUT/neon/default" "$OUT/neon/long" --out "$OUT/neon/gain"
}

section_curation() {
  local gens
  gens=$(pick 20 2)
  # one folder per arm, 5 seeds: scripts/curation_stability.py pairs the arms' seeds
  grid curation replace recipes/curation_mixture.yaml --seeds "$(pick 0-4 0)" -- --loop.generations "$gens"
  grid curation augment recipes/curation_mixture.yaml --seeds "$(pick 0-4 0)" \
    -- --loop.generations "$gens" --loop.mode augment
  grid curation plain recipes/curation_mixture.yaml --seeds "$(pick 0-4 0)" \
    -- --loop.generations "$gens" --loop.corrector null --loop.corrector_kwargs null
  report curation report "$OUT/curation/replace" "$OUT/curation/augment" "$OUT/curation/plain"
  "${PYTHON:-$(dirname "$SCLC")/python}" scripts/curation_stability.py "$OUT/curation/augment" "$OUT/curation/replace" \
    --out "$OUT/curation/stability" --points "$(pick 20000 2000)" --draws "$(pick 4096 256)" --seed 0
}

section_verification() {
  local gens
  gens=$(pick 30 3)
  grid verification biased recipes/verified_regression.yaml --seeds "$(pick 0-9 0)" -- --loop.generations "$gens"
  grid verification good recipes/verified_regression.yaml --seeds "$(pick 0-9 0)" -- --loop.generations "$gens" \
    --loop.corrector_kwargs.verifier '{"name": "linear_residual", "weights": [1, 1, 1, 1, 1, 1, 1, 1]}'
  grid verification none recipes/verified_regression.yaml --seeds "$(pick 0-9 0)" -- --loop.generations "$gens" \
    --loop.corrector null --loop.corrector_kwargs null
  report verification report "$OUT/verification/biased" "$OUT/verification/good" "$OUT/verification/none"
}

mkdir -p "$OUT"
echo "reproduce_results.sh: $SCALE settings, $JOBS jobs, into $OUT"
for section in gillman_fig2 bertrand_prop1 modes bertrand_fig1 bertrand_fig2 gillman_mnist motion \
  linear_regression gmm_em vae lm_finetune lm_pretrain conformers sampling_bias selection_bias golden_ratio neon curation \
  verification; do
  timed "$section"
done
echo "reproduce_results.sh: done; times in $OUT/times.txt"
