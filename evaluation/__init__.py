"""Evaluation of segmenters: the one confusion-matrix implementation and sliding-window inference.

segmentation_metrics: ConfusionMatrix (streaming, tf.function and tf.distribute safe),
    metrics_from_confusion (IoU, Dice, precision, recall, mIoU, pixel / mean accuracy),
    format_table, write_csv, plot_confusion.
sliding_window: predict_probs (slide or whole-image inference of any image size); imports
    TensorFlow only when it predicts, so CLIs can validate their tiling flags quickly.
"""
