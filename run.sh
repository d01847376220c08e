#!/usr/bin/env bash
# The two set-up-free commands of semsynth (see README.md):
#   bash run.sh demo    creates .venv, generates the built-in scenes, trains the tiny SPADE preset
#                       (bounded time), exports a SavedModel, synthesizes a held-out label map,
#                       then trains the tiny SegFormer on the scenes and prints its val mIoU,
#                       then runs Synthesis in Style on the built-in documents (tiny StyleGAN2,
#                       clusters, heuristic labels, synthetic dataset, SegFormer, real pages)
#   bash run.sh test    creates .venv and runs the whole test suite (slow tests included; two
#                       pytest-xdist workers, SEMSYNTH_TEST_WORKERS=0 for one process);
#                       extra arguments go to pytest, e.g. bash run.sh test -m "not slow"
# Environment: SEMSYNTH_VENV (default .venv), PYTHON (default python3),
#              DEMO_MINUTES (default 5), DEMO_DIR (default runs/demo),
#              DEMO_SEG_MINUTES (default 3), DEMO_SEG_DIR (default runs/demo_segformer),
#              DEMO_SG_MINUTES (default 4), DEMO_SG_DIR (default runs/demo_stylegan2).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${SEMSYNTH_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[semsynth] creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local want have stamp="$VENV/.semsynth-requirements"
  want="$(cat requirements.txt requirements-test.txt | sha256sum | cut -d' ' -f1)"
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    echo "[semsynth] installing requirements into $VENV (first run: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r requirements-test.txt
    echo "$want" > "$stamp"
  fi
}

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cmd="${1:-}"
shift || true
case "$cmd" in
  demo)
    ensure_venv
    demo_dir="${DEMO_DIR:-runs/demo}"
    minutes="${DEMO_MINUTES:-5}"
    # 1-2: generate the built-in scenes (on demand) and train the tiny preset for a bounded time;
    # a second `bash run.sh demo` resumes the same run.
    "$VENV/bin/python" train.py --model=spade --preset=tiny --dataset=scenes \
      --checkpoint_dir="$demo_dir" --max_minutes="$minutes" --save_img_freq=100 \
      --print_info_freq=10 "$@"
    # 3: synthesize a held-out (validation) label map with the exported SavedModel.
    label="$(ls data/scenes_256/ADEChallengeData2016/annotations/validation/*.png | head -n 1)"
    "$VENV/bin/python" test_one.py --saved_model="$demo_dir/export" \
      --label_filename="$label" --results_dir="$demo_dir/test_one" --overwrite
    # 4: train the tiny SegFormer on the same scenes (as segmentation data) and report its
    # validation mIoU.
    seg_dir="${DEMO_SEG_DIR:-runs/demo_segformer}"
    "$VENV/bin/python" train.py --model=segformer --preset=tiny --dataset=scenes \
      --checkpoint_dir="$seg_dir" --max_minutes="${DEMO_SEG_MINUTES:-3}" --eval_freq=100 \
      --save_img_freq=100
    "$VENV/bin/python" -c "import json; b = json.load(open('$seg_dir/best.json')); \
print(f'[semsynth] tiny SegFormer: best validation mIoU {b[\"mIoU\"]:.3f}, pixel accuracy \
{b[\"pixel_accuracy\"]:.3f} (step {b[\"step\"]})')"
    # 5: Synthesis in Style on the built-in documents: a tiny StyleGAN2 (bounded time), its
    # feature clusters, heuristic cluster labels (stand-in for the annotator), a synthetic
    # image / mask dataset, a tiny SegFormer on it, and held-out real pages segmented.
    sg_dir="${DEMO_SG_DIR:-runs/demo_stylegan2}"
    "$VENV/bin/python" train.py --model=stylegan2 --preset=tiny --num_pages=20 \
      --num_crops=2000 --checkpoint_dir="$sg_dir" --max_minutes="${DEMO_SG_MINUTES:-4}" \
      --max_steps=100000 --save_img_freq=200 --print_info_freq=20
    rm -rf "$sg_dir/clusters"  # the demo's own clusters and heuristic labels, redone each run
    "$VENV/bin/python" synthesize.py --model=stylegan2 --mode=clusters --checkpoint_dir="$sg_dir" \
      --num_samples=32 --k_range=4-8
    "$VENV/bin/python" -m tools.label_clusters --clusters_dir="$sg_dir/clusters" --k=6 \
      --overwrite
    "$VENV/bin/python" synthesize.py --model=stylegan2 --mode=dataset --checkpoint_dir="$sg_dir" \
      --k=6 --num_images=400 --output_dir="$sg_dir/dataset" --overwrite
    "$VENV/bin/python" train.py --model=segformer --preset=tiny --dataset=json \
      --train_list="$sg_dir/dataset/train.json" --val_list="$sg_dir/dataset/val.json" \
      --semantic_label_path=documents --crop_size=32 --checkpoint_dir="$sg_dir/segformer" \
      --max_minutes="${DEMO_SEG_MINUTES:-3}" --eval_freq=100 --save_img_freq=100
    pages="$(ls -d data/documents_*_n20-2_seed0 | head -n 1)"
    "$VENV/bin/python" segment.py --saved_model="$sg_dir/segformer/export" \
      --input="$pages/images/validation" --gt_dir="$pages/masks/validation" --tile_size=64 \
      --batch_size=16 --output_dir="$sg_dir/segmented" --overwrite
    echo
    echo "[semsynth] demo done."
    echo "  sample grids (label | real | synthesized): $demo_dir/samples/"
    echo "  TensorBoard logs:   $VENV/bin/tensorboard --logdir $demo_dir/logs"
    echo "  SavedModel:         $demo_dir/export"
    echo "  held-out synthesis: $demo_dir/test_one/ (from $label)"
    echo "  segmenter run:      $seg_dir (samples/, logs/, export/; try segment.py on it)"
    echo "  Synthesis in Style: $sg_dir (samples/, clusters/ - annotate with"
    echo "    $VENV/bin/python -m annotator --clusters_dir=$sg_dir/clusters --k=6 -,"
    echo "    dataset/, segformer/, segmented/ held-out pages)"
    ;;
  test)
    ensure_venv
    set +e
    # Two pytest workers (pytest-xdist), whole files per worker: much of a test's time is
    # single-threaded Python (tracing, building Keras models), so two workers use both cores.
    # SEMSYNTH_TEST_WORKERS=0 runs the tests in one process.
    workers="${SEMSYNTH_TEST_WORKERS:-2}"
    xdist=()
    if [ "$workers" != "0" ]; then xdist=(-n "$workers" --dist loadfile); fi
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${xdist[@]}" tests "$@"
    rc=$?
    # pytest exits 5 when a selection collects nothing: that is a failure of the suite here.
    exit $rc
    ;;
  *)
    echo "usage: bash run.sh demo | bash run.sh test [pytest arguments]" >&2
    exit 2
    ;;
esac
