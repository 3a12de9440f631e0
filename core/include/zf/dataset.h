/* Training data held in memory (Fashion-MNIST's IDX files, or a folder of JPEG/PNG images with one
 * sub-folder per class) and the batches a trainer draws from it: crop, resize to the net's input,
 * flip, AlexNet's PCA colour noise, normalisation. */
#ifndef ZF_DATASET_H
#define ZF_DATASET_H

#include <stdint.h>

#include "zf/net.h"
#include "zf/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zf_dataset {
    int64_t n;          /* images */
    int c, h, w;        /* channels (1 grey, 3 RGB), stored size */
    uint8_t *pixels;    /* (n, h, w, c) interleaved, 0-255 */
    int32_t *labels;    /* n, each in [0, n_classes) */
    int n_classes;
    char **class_names; /* n_classes */
    char source[512];   /* what it was loaded from (a path), for messages */
} zf_dataset;

/* The default Fashion-MNIST folder (Debian's dataset-fashion-mnist package). */
#define ZF_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Fashion-MNIST from dir (NULL: $ZFVIZ_FASHION_MNIST when set, else ZF_FASHION_MNIST_DIR), the
 * 60000-image training set (train = 1) or the 10000-image test set (train = 0): files
 * {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, or the same names without .gz. Grey 28 x 28,
 * 10 classes named T-shirt/top, Trouser, ..., Ankle boot. */
zf_status zf_dataset_load_fashion_mnist(const char *dir, int train, zf_dataset **out);

/* An IDX pair: images (magic 0x00000803: unsigned bytes, n x rows x cols, grey) and labels
 * (0x00000801: n unsigned bytes), each gzip'd or plain. Errors name the file and the problem: bad
 * magic, zero or absurd dimensions, counts that disagree, a file cut short or with data after the
 * declared end, a corrupt gzip stream. Classes are 0 .. max label, named "0", "1", ... */
zf_status zf_dataset_load_idx(const char *images, const char *labels, zf_dataset **out);

/* Called between chunks of work with the images done so far; a nonzero return stops the load
 * (ZF_ERR_INTERRUPTED), as does zf_interrupted. */
typedef int (*zf_dataset_progress)(void *ctx, int64_t done, int64_t total);

/* An ImageNet-style folder: each sub-folder of dir is a class, class index = position of its name
 * in byte order (Python's sorted(), as torchvision's ImageFolder), class name = folder name.
 * Images are the files in the class folders (not below) named *.jpg, *.jpeg or *.png in any case;
 * other files and names starting with '.' are ignored. Each image is decoded (zf_image_load),
 * resized so its short side is store_short px and centre-cropped to store_short x store_short
 * (torchvision's Resize + CenterCrop, zf_image_to_input's resampling, rounded to bytes) and kept
 * as RGB; store_short is 1 to 4096, and everything stays in memory (n * store_short^2 * 3 bytes:
 * 13000 images at 256 px take 2.6 GB). Any image that fails to decode fails the load with an
 * error naming it; no class folder, or a class folder without images, is an error too. Decoding
 * runs on all OpenMP threads. */
zf_status zf_dataset_load_folder(const char *dir, int store_short, zf_dataset **out);
zf_status zf_dataset_load_folder_ex(const char *dir, int store_short, zf_dataset_progress progress,
                                    void *progress_ctx, zf_dataset **out);

/* An empty dataset of n zeroed images (labels 0) and n_classes unnamed classes (class_names[k]
 * NULL; set them with malloc'd strings, zf_dataset_free frees them). */
zf_dataset *zf_dataset_new(int64_t n, int c, int h, int w, int n_classes);

/* Rows [first, first+count) copied into a new dataset (e.g. a held-out validation split). */
zf_status zf_dataset_slice(const zf_dataset *ds, int64_t first, int64_t count, zf_dataset **out);
void zf_dataset_free(zf_dataset *ds);

typedef struct zf_augment {
    /* Random crop; 0: the centre window. The window taken from a stored image is the part the net's
     * preprocessing keeps: all of it for ZF_RESIZE_EXACT nets (the mini nets), and
     * round(stored * in / resize_short) px per side for ZF_RESIZE_SHORT_CROP nets (224 of 256 for
     * AlexNet, 227 of 256 for the Caffe nets). Where the window is smaller than the stored image
     * it moves uniformly over all positions inside it and any crop > 0 just turns this on; where
     * it is the whole image (28x28 Fashion-MNIST for the mini nets) the image is zero-padded (black)
     * by `crop` px each side and the window moves over the padded image (offsets -crop .. crop). */
    int crop;
    int flip;          /* random horizontal flips (probability 1/2) */
    /* AlexNet's PCA colour noise, RGB data only (ignored for grey data): each image gets
     * sum_k eigvec[.][k] * alpha_k * eigval[k], alpha_k ~ N(0, pca_std), added to every pixel in
     * 0-1 scale before normalisation. 0.1 in the paper; 0 turns it off. */
    float pca_std;
    float eigval[3], eigvec[3][3];  /* from zf_dataset_pca */
} zf_augment;

/* Eigen-decomposition (LAPACK dsyev) of the 3x3 covariance (population, divided by N) of RGB pixel
 * values in 0-1 scale, over every pixel of up to 2^24 pixels' worth of evenly spaced images.
 * eigval descending; eigvec[c][k] is component c (R, G, B) of the unit eigenvector of eigval[k]
 * (columns are eigenvectors, as numpy.linalg.eigh), its largest component made positive.
 * Grey data is an error. */
zf_status zf_dataset_pca(const zf_dataset *ds, float eigval[3], float eigvec[3][3]);

/* Fills input (n, net->in_c, net->in_h, net->in_w) and labels (n; NULL to skip) from images
 * idx[0..n). Per image: the window (see zf_augment.crop; centred when aug is NULL or aug->crop is
 * 0, with torchvision's CenterCrop offset) is cut from the stored image, zero-padded where it
 * leaves it, resized to in_h x in_w with zf_image_to_input's antialiased bilinear (PIL's, and for
 * upsampling torch's F.interpolate(align_corners=False)), mirrored if flipped, PCA noise added,
 * and normalised (p/255*scale + noise*scale - mean[c]) / std[c] as net->pre says, in its channel
 * order. A grey net (in_c 1, order ZF_COLOR_GREY) fed RGB data takes luma 0.299R + 0.587G +
 * 0.114B (before resizing: linear, so the same as after); a 3-channel net fed grey data gets the
 * plane in all three channels. Without augmentation and with stored images that are the
 * net's resize_short, this equals zf_image_to_input on the stored image.
 * Each image's random choices come from a counter-based generator of (seed, idx[i]) alone, so a
 * batch is the same whatever the threads and the batch's composition, and a run can resume at
 * any step: the same (seed, image) always gets the same crop, flip and noise, so give each epoch
 * its own seed (e.g. run seed and epoch hashed together). Parallel over images (OpenMP). */
zf_status zf_dataset_batch(float *input, int32_t *labels, const zf_dataset *ds, const int64_t *idx,
                           int n, const zf_net *net, const zf_augment *aug, uint64_t seed);

/* A deterministic permutation of 0..n-1 for epoch `epoch` of a run with `seed` (Fisher-Yates on a
 * counter-based generator of (seed, epoch, step)). */
void zf_dataset_shuffle(int64_t *perm, int64_t n, uint64_t seed, int epoch);

/* Per-channel pixel mean and standard deviation (population) in 0-1 scale, over every pixel of up
 * to 2^26 pixels' worth of evenly spaced images. Grey data fills all three entries with its one
 * channel's values, ready for zf_preproc.mean and std. */
void zf_dataset_stats(const zf_dataset *ds, float mean[3], float std[3]);

#ifdef __cplusplus
}
#endif
#endif
