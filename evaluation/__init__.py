"""Evaluation of segmenters: the one confusion-matrix implementation and sliding-window inference.

segmentation_metrics: ConfusionMatrix (streaming, tf.function and tf.distribute safe),
    metrics_from_confusion (IoU, Dice, precision, recall, mIoU, pixel / mean accuracy),
    format_table, write_csv, plot_confusion.
sliding_window: predict_probs (slide or whole-image inference of any image size); imports
    TensorFlow only when it predicts, so CLIs can validate their tiling flags quickly.
fid: frechet_distance, FeatureStats (streaming float64 mean / covariance), fid_from_stats,
    fid_from_features, kid_from_features (unbiased MMD^2, cubic polynomial kernel); numpy only.
inception: InceptionFeatures (InceptionV3 2048-d pool features of uint8 images, streamed over
    files or a tf.data dataset; weights imagenet, a local file, or random for smoke runs).
semantic_consistency: a real-data segmenter on synthesized images vs their label maps (mIoU,
    pixel accuracy through segmentation_metrics).
synthetic_to_real: SegFormer trained on real / synthetic / real + synthetic data on one budget,
    evaluated on held-out real images (results.csv, results.md, results.png).
sifid: single-image FID (early InceptionV3 feature maps, positions as samples).
lpips: LPIPS (VGG16; Keras or torchvision backbone, official linear weights or uniform).
palette_metrics: class proportions, KL / JS / MAE to targets, EMD, Frechet distance, GMM
    log-likelihood of palettes (numpy).
pair_folders: reading synthetic pair folders (and real pair folders) for the modes below.
one_shot, palette_report: evaluate.py --mode=one_shot and --mode=palette.
result_files: atomic CSV / markdown / JSON result files.
"""
