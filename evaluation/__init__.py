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
"""
