/*
 * module.c - the CPython extension vecdb._native: numpy arrays in through the buffer protocol,
 * validated here (dtype, ndim, shape, C-contiguity, offsets, code ranges) so the C kernels can
 * trust their arguments, then the kernel runs with the GIL released and writes into the
 * caller's `out`. Shapes and semantics are those of vecdb/kernels/reference.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecdb_kernels.h"

int vdb_searcher_register(PyObject *module); /* searcher.c */

static const char *const LEVEL_NAMES[] = {"scalar", "avx2", "avx512"};
#define N_LEVELS 3

/* ---- argument checking ---- */

/* An accepted element type: buffer format characters (any byte-order prefix meaning native
 * little-endian is stripped first), the item size, and the dtype name used in messages.
 * uint64/int64 appear as 'L'/'l' on LP64 numpy and 'Q'/'q' elsewhere, hence two characters. */
typedef struct {
    const char *formats;
    Py_ssize_t itemsize;
    const char *dtype;
} elem_kind;

static const elem_kind K_F32 = {"f", 4, "float32"};
static const elem_kind K_F16 = {"e", 2, "float16"};
static const elem_kind K_U8 = {"B", 1, "uint8"};
static const elem_kind K_MASK = {"B?", 1, "bool or uint8"};
static const elem_kind K_U16 = {"H", 2, "uint16"};
static const elem_kind K_I32 = {"il", 4, "int32"};
static const elem_kind K_U64 = {"QL", 8, "uint64"};
static const elem_kind K_I64 = {"ql", 8, "int64"};

/* The buffers one call holds; released together on every exit path. */
typedef struct {
    Py_buffer views[8];
    int count;
} held_buffers;

static void release_all(held_buffers *held) {
    for (int i = 0; i < held->count; i++) PyBuffer_Release(&held->views[i]);
    held->count = 0;
}

/* Format character of a buffer with native-order prefixes removed, or 0 if it is not a single
 * native-order item. */
static char plain_format(const char *fmt) {
    if (fmt == NULL) return 'B';
    if (*fmt == '@' || *fmt == '=') fmt++;
#if PY_LITTLE_ENDIAN
    else if (*fmt == '<') fmt++;
#else
    else if (*fmt == '>' || *fmt == '!') fmt++;
#endif
    if (fmt[0] == '\0' || fmt[1] != '\0') return 0;
    return fmt[0];
}

/* Borrow obj's buffer as a C-contiguous ndim-dimensional array of `kind`; on failure set
 * TypeError (not an array, wrong dtype) or ValueError (read-only out, wrong ndim, strided). */
static Py_buffer *get_array(held_buffers *held, PyObject *obj, const char *name, const elem_kind *kind, int ndim,
                            int writable) {
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %d-dimensional %s numpy array, got %.200s", name, ndim,
                     kind->dtype, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    Py_buffer *view = &held->views[held->count];
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        /* Re-raise as ValueError naming the argument, keeping the exporter's reason. */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *value = PyErr_GetRaisedException();
#else
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
#endif
        PyErr_Format(PyExc_ValueError, "%s: cannot use this array%s (%S)", name,
                     writable ? " as an output (it must be writable)" : "", value ? value : Py_None);
        Py_XDECREF(value);
        return NULL;
    }
    held->count++;
    char f = plain_format(view->format);
    if (f == 0 || strchr(kind->formats, f) == NULL || view->itemsize != kind->itemsize) {
        PyErr_Format(PyExc_TypeError, "%s must have dtype %s, got buffer format '%s' with itemsize %zd", name,
                     kind->dtype, view->format ? view->format : "B", view->itemsize);
        return NULL;
    }
    if (view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must be %d-dimensional, got %d dimension(s)", name, ndim, view->ndim);
        return NULL;
    }
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous (numpy.ascontiguousarray makes a copy)", name);
        return NULL;
    }
    return view;
}

/* shape[axis] must equal `expected` (described by `what`); -1 with ValueError otherwise. */
static int expect_dim(const Py_buffer *view, const char *name, int axis, Py_ssize_t expected, const char *what) {
    if (view->shape[axis] == expected) return 0;
    PyErr_Format(PyExc_ValueError, "%s.shape[%d] must be %zd (%s), got %zd", name, axis, expected, what,
                 view->shape[axis]);
    return -1;
}

static int check_metric(int metric) {
    if (metric == VDB_METRIC_L2 || metric == VDB_METRIC_IP || metric == VDB_METRIC_COSINE) return 0;
    PyErr_Format(PyExc_ValueError, "metric must be 0 (l2), 1 (ip) or 2 (cosine), got %d", metric);
    return -1;
}

#define KW(...) (char *[]){__VA_ARGS__, NULL}

/* ---- the kernels ---- */

PyDoc_STRVAR(distances_f32_doc,
             "distances_f32(query, rows, metric, out)\n\nquery: (d,) float32, rows: (n, d) float32, metric: 0=l2 "
             "1=ip 2=cosine, out: (n,) float32.");

static PyObject *py_distances_f32(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *oq, *ox, *oout;
    int metric;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOiO:distances_f32", KW("query", "rows", "metric", "out"), &oq,
                                     &ox, &metric, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *q, *x, *out;
    if (check_metric(metric) || !(q = get_array(&held, oq, "query", &K_F32, 1, 0)) ||
        !(x = get_array(&held, ox, "rows", &K_F32, 2, 0)) || !(out = get_array(&held, oout, "out", &K_F32, 1, 1)) ||
        expect_dim(x, "rows", 1, q->shape[0], "len(query)") || expect_dim(out, "out", 0, x->shape[0], "rows.shape[0]"))
        goto fail;
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->distances_f32(q->buf, x->buf, x->shape[0], x->shape[1], metric, out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(distances_f32_at_doc,
             "distances_f32_at(query, rows, offsets, metric, out)\n\nquery: (d,) float32, rows: (n, d) float32, "
             "offsets: (m,) int64 in [0, n), out: (m,) float32 distances to rows[offsets].");

static PyObject *py_distances_f32_at(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *oq, *ox, *ooff, *oout;
    int metric;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOiO:distances_f32_at",
                                     KW("query", "rows", "offsets", "metric", "out"), &oq, &ox, &ooff, &metric,
                                     &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *q, *x, *off, *out;
    if (check_metric(metric) || !(q = get_array(&held, oq, "query", &K_F32, 1, 0)) ||
        !(x = get_array(&held, ox, "rows", &K_F32, 2, 0)) ||
        !(off = get_array(&held, ooff, "offsets", &K_I64, 1, 0)) ||
        !(out = get_array(&held, oout, "out", &K_F32, 1, 1)) ||
        expect_dim(x, "rows", 1, q->shape[0], "len(query)") ||
        expect_dim(out, "out", 0, off->shape[0], "len(offsets)"))
        goto fail;
    /* The kernel trusts its offsets: a bad one must stop here, not read out of bounds. */
    const int64_t *offsets = off->buf;
    for (Py_ssize_t i = 0; i < off->shape[0]; i++)
        if (offsets[i] < 0 || offsets[i] >= x->shape[0]) {
            PyErr_Format(PyExc_IndexError, "offsets[%zd] = %lld is out of range for rows with %zd rows", i,
                         (long long)offsets[i], x->shape[0]);
            goto fail;
        }
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->distances_f32_at(q->buf, x->buf, offsets, off->shape[0], x->shape[1], metric, out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(topk_f32_at_doc,
             "topk_f32_at(query, rows, offsets, metric, k, out_idx, out_dist) -> int\n\nThe k rows of rows[offsets] "
             "nearest to query (distances_f32_at then topk in one call): out_idx (k,) int64 receives their row "
             "offsets, ascending by distance, ties by position in offsets, NaN skipped, padded -1 / +inf; returns "
             "the count filled.");

static PyObject *py_topk_f32_at(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *oq, *ox, *ooff, *oi, *ood;
    int metric;
    long long k;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOiLOO:topk_f32_at",
                                     KW("query", "rows", "offsets", "metric", "k", "out_idx", "out_dist"), &oq, &ox,
                                     &ooff, &metric, &k, &oi, &ood))
        return NULL;
    if (k < 0) {
        PyErr_Format(PyExc_ValueError, "k must be >= 0, got %lld", k);
        return NULL;
    }
    held_buffers held = {.count = 0};
    Py_buffer *q, *x, *off, *idx, *dist;
    if (check_metric(metric) || !(q = get_array(&held, oq, "query", &K_F32, 1, 0)) ||
        !(x = get_array(&held, ox, "rows", &K_F32, 2, 0)) ||
        !(off = get_array(&held, ooff, "offsets", &K_I64, 1, 0)) ||
        !(idx = get_array(&held, oi, "out_idx", &K_I64, 1, 1)) ||
        !(dist = get_array(&held, ood, "out_dist", &K_F32, 1, 1)) ||
        expect_dim(x, "rows", 1, q->shape[0], "len(query)") || expect_dim(idx, "out_idx", 0, (Py_ssize_t)k, "k") ||
        expect_dim(dist, "out_dist", 0, (Py_ssize_t)k, "k"))
        goto fail;
    const int64_t *offsets = off->buf;
    const int64_t m = off->shape[0];
    for (int64_t i = 0; i < m; i++)
        if (offsets[i] < 0 || offsets[i] >= x->shape[0]) {
            PyErr_Format(PyExc_IndexError, "offsets[%lld] = %lld is out of range for rows with %zd rows", (long long)i,
                         (long long)offsets[i], x->shape[0]);
            goto fail;
        }
    /* A filter's few matching rows fit on the stack; a long list gets a heap buffer. */
    float small[1024];
    float *scratch = m <= 1024 ? small : PyMem_RawMalloc((size_t)m * sizeof(float));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    const vdb_kernel_table *t = vdb_active_table();
    int64_t *out_idx = idx->buf;
    int64_t filled;
    Py_BEGIN_ALLOW_THREADS
    t->distances_f32_at(q->buf, x->buf, offsets, m, x->shape[1], metric, scratch);
    filled = t->topk(scratch, NULL, m, k, out_idx, dist->buf);
    for (int64_t j = 0; j < filled; j++) out_idx[j] = offsets[out_idx[j]];
    Py_END_ALLOW_THREADS
    if (scratch != small) PyMem_RawFree(scratch);
    release_all(&held);
    return PyLong_FromLongLong(filled);
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(distances_f16_doc,
             "distances_f16(query, rows, metric, out)\n\nquery: (d,) float32, rows: (n, d) float16, out: (n,) "
             "float32.");

static PyObject *py_distances_f16(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *oq, *ox, *oout;
    int metric;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOiO:distances_f16", KW("query", "rows", "metric", "out"), &oq,
                                     &ox, &metric, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *q, *x, *out;
    if (check_metric(metric) || !(q = get_array(&held, oq, "query", &K_F32, 1, 0)) ||
        !(x = get_array(&held, ox, "rows", &K_F16, 2, 0)) || !(out = get_array(&held, oout, "out", &K_F32, 1, 1)) ||
        expect_dim(x, "rows", 1, q->shape[0], "len(query)") || expect_dim(out, "out", 0, x->shape[0], "rows.shape[0]"))
        goto fail;
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->distances_f16(q->buf, x->buf, x->shape[0], x->shape[1], metric, out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(distances_sq8_doc,
             "distances_sq8(query, codes, scale, offset, metric, out)\n\nquery: (d,) float32, codes: (n, d) uint8, "
             "scale, offset: (d,) float32 (row = offset + scale * code), out: (n,) float32.");

static PyObject *py_distances_sq8(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *oq, *oc, *os, *oo, *oout;
    int metric;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOiO:distances_sq8",
                                     KW("query", "codes", "scale", "offset", "metric", "out"), &oq, &oc, &os, &oo,
                                     &metric, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *q, *c, *sc, *of, *out;
    if (check_metric(metric) || !(q = get_array(&held, oq, "query", &K_F32, 1, 0)) ||
        !(c = get_array(&held, oc, "codes", &K_U8, 2, 0)) || !(sc = get_array(&held, os, "scale", &K_F32, 1, 0)) ||
        !(of = get_array(&held, oo, "offset", &K_F32, 1, 0)) ||
        !(out = get_array(&held, oout, "out", &K_F32, 1, 1)) ||
        expect_dim(c, "codes", 1, q->shape[0], "len(query)") || expect_dim(sc, "scale", 0, q->shape[0], "len(query)") ||
        expect_dim(of, "offset", 0, q->shape[0], "len(query)") ||
        expect_dim(out, "out", 0, c->shape[0], "codes.shape[0]"))
        goto fail;
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->distances_sq8(q->buf, c->buf, sc->buf, of->buf, c->shape[0], c->shape[1], metric, out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(hamming_doc,
             "hamming(query_code, codes, out)\n\nquery_code: (w,) uint64, codes: (n, w) uint64, out: (n,) int32.");

static PyObject *py_hamming(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *oq, *oc, *oout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO:hamming", KW("query_code", "codes", "out"), &oq, &oc, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *q, *c, *out;
    if (!(q = get_array(&held, oq, "query_code", &K_U64, 1, 0)) ||
        !(c = get_array(&held, oc, "codes", &K_U64, 2, 0)) || !(out = get_array(&held, oout, "out", &K_I32, 1, 1)) ||
        expect_dim(c, "codes", 1, q->shape[0], "len(query_code)") ||
        expect_dim(out, "out", 0, c->shape[0], "codes.shape[0]"))
        goto fail;
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->hamming(q->buf, c->buf, c->shape[0], c->shape[1], out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(bitplane_ip_sym_doc,
             "bitplane_ip_sym(query_planes, codes, query_weights, code_weights, dim, out)\n\nquery_planes: (uq, w) "
             "uint64, codes: (n, u, w) uint64, query_weights: (uq,) float32, code_weights: (u,) float32, dim: the "
             "true dimension (0 <= dim <= 64*w), out: (n,) float32.");

static PyObject *py_bitplane_ip_sym(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *oq, *oc, *oqw, *ocw, *oout;
    long long dim;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOLO:bitplane_ip_sym",
                                     KW("query_planes", "codes", "query_weights", "code_weights", "dim", "out"), &oq,
                                     &oc, &oqw, &ocw, &dim, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *q, *c, *qw, *cw, *out;
    if (!(q = get_array(&held, oq, "query_planes", &K_U64, 2, 0)) ||
        !(c = get_array(&held, oc, "codes", &K_U64, 3, 0)) ||
        !(qw = get_array(&held, oqw, "query_weights", &K_F32, 1, 0)) ||
        !(cw = get_array(&held, ocw, "code_weights", &K_F32, 1, 0)) ||
        !(out = get_array(&held, oout, "out", &K_F32, 1, 1)) ||
        expect_dim(c, "codes", 2, q->shape[1], "query_planes.shape[1]") ||
        expect_dim(qw, "query_weights", 0, q->shape[0], "query_planes.shape[0]") ||
        expect_dim(cw, "code_weights", 0, c->shape[1], "codes.shape[1]") ||
        expect_dim(out, "out", 0, c->shape[0], "codes.shape[0]"))
        goto fail;
    if (dim < 0 || dim > 64 * (long long)q->shape[1]) {
        PyErr_Format(PyExc_ValueError, "dim must be in [0, 64 * w] = [0, %lld], got %lld", 64 * (long long)q->shape[1],
                     dim);
        goto fail;
    }
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->bitplane_ip_sym(q->buf, c->buf, qw->buf, cw->buf, q->shape[0], c->shape[0], c->shape[1], c->shape[2], dim,
                       out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(bitplane_ip_asym_doc,
             "bitplane_ip_asym(lut, codes, code_weights, query_sum, out)\n\nlut: (w*8, 256) float32 "
             "(reference.bitplane_lut), codes: (n, u, w) uint64, code_weights: (u,) float32, query_sum: sum of the "
             "query, out: (n,) float32.");

static PyObject *py_bitplane_ip_asym(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *ol, *oc, *ocw, *oout;
    double query_sum;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOdO:bitplane_ip_asym",
                                     KW("lut", "codes", "code_weights", "query_sum", "out"), &ol, &oc, &ocw,
                                     &query_sum, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *l, *c, *cw, *out;
    if (!(l = get_array(&held, ol, "lut", &K_F32, 2, 0)) || !(c = get_array(&held, oc, "codes", &K_U64, 3, 0)) ||
        !(cw = get_array(&held, ocw, "code_weights", &K_F32, 1, 0)) ||
        !(out = get_array(&held, oout, "out", &K_F32, 1, 1)) ||
        expect_dim(l, "lut", 0, 8 * c->shape[2], "8 * codes.shape[2]") || expect_dim(l, "lut", 1, 256, "one entry per byte value") ||
        expect_dim(cw, "code_weights", 0, c->shape[1], "codes.shape[1]") ||
        expect_dim(out, "out", 0, c->shape[0], "codes.shape[0]"))
        goto fail;
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->bitplane_ip_asym(l->buf, c->buf, cw->buf, (float)query_sum, c->shape[0], c->shape[1], c->shape[2], out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(pq_adc_doc,
             "pq_adc(lut, codes, out)\n\nlut: (m, ksub) float32 with 1 <= ksub <= 256, codes: (n, m) uint8 with "
             "every code < ksub, out: (n,) float32.");

/* Index of the first code >= ksub, or -1: the kernel indexes the table with codes unchecked. */
static Py_ssize_t first_bad_code(const uint8_t *codes, Py_ssize_t count, Py_ssize_t ksub) {
    if (ksub >= 256) return -1;
    for (Py_ssize_t i = 0; i < count; i++)
        if (codes[i] >= ksub) return i;
    return -1;
}

static PyObject *py_pq_adc(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *ol, *oc, *oout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO:pq_adc", KW("lut", "codes", "out"), &ol, &oc, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *l, *c, *out;
    if (!(l = get_array(&held, ol, "lut", &K_F32, 2, 0)) || !(c = get_array(&held, oc, "codes", &K_U8, 2, 0)) ||
        !(out = get_array(&held, oout, "out", &K_F32, 1, 1)) ||
        expect_dim(c, "codes", 1, l->shape[0], "lut.shape[0]") || expect_dim(out, "out", 0, c->shape[0], "codes.shape[0]"))
        goto fail;
    Py_ssize_t ksub = l->shape[1];
    if (ksub < 1 || ksub > 256) {
        PyErr_Format(PyExc_ValueError, "lut.shape[1] (ksub) must be in [1, 256], got %zd", ksub);
        goto fail;
    }
    const vdb_kernel_table *t = vdb_active_table();
    Py_ssize_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = first_bad_code(c->buf, c->shape[0] * c->shape[1], ksub);
    if (bad < 0) t->pq_adc(l->buf, c->buf, c->shape[0], c->shape[1], ksub, out->buf);
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        Py_ssize_t m = c->shape[1];
        PyErr_Format(PyExc_ValueError, "codes[%zd, %zd] = %d is not below ksub = lut.shape[1] = %zd", bad / m,
                     bad % m, (int)((const uint8_t *)c->buf)[bad], ksub);
        goto fail;
    }
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(pq4_fastscan_doc,
             "pq4_fastscan(lut_u8, packed, n, out)\n\nlut_u8: (m, 16) uint8, packed: (nblocks, m, 16) uint8 in the "
             "fast-scan layout (reference.pq4_pack) with nblocks >= ceil(n/32), out: (n,) uint16.");

static PyObject *py_pq4_fastscan(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *ol, *op, *oout;
    long long n;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOLO:pq4_fastscan", KW("lut_u8", "packed", "n", "out"), &ol, &op,
                                     &n, &oout))
        return NULL;
    held_buffers held = {.count = 0};
    Py_buffer *l, *p, *out;
    if (!(l = get_array(&held, ol, "lut_u8", &K_U8, 2, 0)) || !(p = get_array(&held, op, "packed", &K_U8, 3, 0)) ||
        !(out = get_array(&held, oout, "out", &K_U16, 1, 1)) ||
        expect_dim(l, "lut_u8", 1, 16, "16 entries per 4-bit sub-quantizer") ||
        expect_dim(p, "packed", 1, l->shape[0], "lut_u8.shape[0]") ||
        expect_dim(p, "packed", 2, 16, "16 bytes = 32 rows per block"))
        goto fail;
    if (n < 0 || n > 32 * (long long)p->shape[0]) {
        PyErr_Format(PyExc_ValueError, "n must be in [0, 32 * packed.shape[0]] = [0, %lld], got %lld",
                     32 * (long long)p->shape[0], n);
        goto fail;
    }
    if (expect_dim(out, "out", 0, (Py_ssize_t)n, "n")) goto fail;
    const vdb_kernel_table *t = vdb_active_table();
    Py_BEGIN_ALLOW_THREADS
    t->pq4_fastscan(l->buf, p->buf, n, l->shape[0], out->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    Py_RETURN_NONE;
fail:
    release_all(&held);
    return NULL;
}

PyDoc_STRVAR(topk_doc,
             "topk(distances, k, mask, out_idx, out_dist) -> int\n\ndistances: (n,) float32, k >= 0, mask: (n,) bool "
             "or uint8 (nonzero = allowed) or None, out_idx: (k,) int64, out_dist: (k,) float32. Ascending "
             "(distance, index); NaN and masked entries never selected; padded with -1 / +inf. Returns the number "
             "filled.");

/* topk and topk_u16: the same arguments and checks; `kind` is the distances' dtype (float32 or
 * uint16), which picks the kernel. */
static PyObject *topk_call(PyObject *args, PyObject *kw, const char *format, const elem_kind *kind) {
    PyObject *od, *om, *oi, *ood;
    long long k;
    if (!PyArg_ParseTupleAndKeywords(args, kw, format, KW("distances", "k", "mask", "out_idx", "out_dist"), &od, &k,
                                     &om, &oi, &ood))
        return NULL;
    if (k < 0) {
        PyErr_Format(PyExc_ValueError, "k must be >= 0, got %lld", k);
        return NULL;
    }
    held_buffers held = {.count = 0};
    Py_buffer *d, *m = NULL, *idx, *dist;
    if (!(d = get_array(&held, od, "distances", kind, 1, 0)) ||
        (om != Py_None && !(m = get_array(&held, om, "mask", &K_MASK, 1, 0))) ||
        !(idx = get_array(&held, oi, "out_idx", &K_I64, 1, 1)) ||
        !(dist = get_array(&held, ood, "out_dist", &K_F32, 1, 1)) ||
        (m && expect_dim(m, "mask", 0, d->shape[0], "len(distances)")) ||
        expect_dim(idx, "out_idx", 0, (Py_ssize_t)k, "k") || expect_dim(dist, "out_dist", 0, (Py_ssize_t)k, "k"))
        goto fail;
    const vdb_kernel_table *t = vdb_active_table();
    const uint8_t *mask = m ? m->buf : NULL;
    int64_t filled;
    Py_BEGIN_ALLOW_THREADS
    if (kind == &K_U16)
        filled = vdb_topk_u16(d->buf, mask, d->shape[0], k, idx->buf, dist->buf);
    else
        filled = t->topk(d->buf, mask, d->shape[0], k, idx->buf, dist->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    return PyLong_FromLongLong(filled);
fail:
    release_all(&held);
    return NULL;
}

static PyObject *py_topk(PyObject *self, PyObject *args, PyObject *kw) {
    return topk_call(args, kw, "OLOOO:topk", &K_F32);
}

PyDoc_STRVAR(topk_u16_doc,
             "topk_u16(distances, k, mask, out_idx, out_dist) -> int\n\nAs topk for (n,) uint16 distances (the fast "
             "scan's sums); out_dist receives them as float32.");

static PyObject *py_topk_u16(PyObject *self, PyObject *args, PyObject *kw) {
    return topk_call(args, kw, "OLOOO:topk_u16", &K_U16);
}

PyDoc_STRVAR(pq4_fastscan_topk_doc,
             "pq4_fastscan_topk(lut_u8, packed, n, k, mask, out_idx, out_dist) -> int\n\npq4_fastscan's sums for n "
             "rows reduced to their k smallest as topk_u16 does, without materialising the n sums.");

static PyObject *py_pq4_fastscan_topk(PyObject *self, PyObject *args, PyObject *kw) {
    PyObject *ol, *op, *om, *oi, *ood;
    long long n, k;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOLLOOO:pq4_fastscan_topk",
                                     KW("lut_u8", "packed", "n", "k", "mask", "out_idx", "out_dist"), &ol, &op, &n,
                                     &k, &om, &oi, &ood))
        return NULL;
    if (k < 0) {
        PyErr_Format(PyExc_ValueError, "k must be >= 0, got %lld", k);
        return NULL;
    }
    held_buffers held = {.count = 0};
    Py_buffer *l, *p, *m = NULL, *idx, *dist;
    if (!(l = get_array(&held, ol, "lut_u8", &K_U8, 2, 0)) || !(p = get_array(&held, op, "packed", &K_U8, 3, 0)) ||
        (om != Py_None && !(m = get_array(&held, om, "mask", &K_MASK, 1, 0))) ||
        !(idx = get_array(&held, oi, "out_idx", &K_I64, 1, 1)) ||
        !(dist = get_array(&held, ood, "out_dist", &K_F32, 1, 1)) ||
        expect_dim(l, "lut_u8", 1, 16, "16 entries per 4-bit sub-quantizer") ||
        expect_dim(p, "packed", 1, l->shape[0], "lut_u8.shape[0]") ||
        expect_dim(p, "packed", 2, 16, "16 bytes = 32 rows per block") ||
        expect_dim(idx, "out_idx", 0, (Py_ssize_t)k, "k") || expect_dim(dist, "out_dist", 0, (Py_ssize_t)k, "k"))
        goto fail;
    if (n < 0 || n > 32 * (long long)p->shape[0]) {
        PyErr_Format(PyExc_ValueError, "n must be in [0, 32 * packed.shape[0]] = [0, %lld], got %lld",
                     32 * (long long)p->shape[0], n);
        goto fail;
    }
    if (m && expect_dim(m, "mask", 0, (Py_ssize_t)n, "n")) goto fail;
    int64_t filled;
    Py_BEGIN_ALLOW_THREADS
    filled = vdb_pq4_fastscan_topk_u8(l->buf, p->buf, n, l->shape[0], m ? m->buf : NULL, k, idx->buf, dist->buf);
    Py_END_ALLOW_THREADS
    release_all(&held);
    return PyLong_FromLongLong(filled);
fail:
    release_all(&held);
    return NULL;
}

/* ---- SIMD level control ---- */

PyDoc_STRVAR(simd_level_doc, "simd_level() -> str\n\nThe active kernel level: 'scalar', 'avx2' or 'avx512'.");

static PyObject *py_simd_level(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(vdb_active_table()->name);
}

static int level_from_name(const char *name) {
    for (int i = 0; i < N_LEVELS; i++)
        if (strcmp(name, LEVEL_NAMES[i]) == 0) return i;
    return -1;
}

PyDoc_STRVAR(set_simd_level_doc,
             "set_simd_level(name) -> str\n\nCap the kernel level at `name` ('scalar' | 'avx2' | 'avx512'); the "
             "level used is the best the CPU supports at or below it. Returns the level now active.");

static PyObject *py_set_simd_level(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "name must be a str, got %.200s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) return NULL;
    int level = level_from_name(name);
    if (level < 0) {
        PyErr_Format(PyExc_ValueError, "unknown SIMD level %R: expected one of 'scalar', 'avx2', 'avx512'", arg);
        return NULL;
    }
    return PyUnicode_FromString(LEVEL_NAMES[vdb_set_level(level)]);
}

PyDoc_STRVAR(cpu_features_doc, "cpu_features() -> dict[str, bool]\n\nWhat the CPU probe found at import.");

static PyObject *py_cpu_features(PyObject *self, PyObject *unused) {
    const vdb_cpu_features *f = vdb_cpu();
    return Py_BuildValue("{sOsOsOsOsOsOsOsO}", "avx2", f->avx2 ? Py_True : Py_False, "fma",
                         f->fma ? Py_True : Py_False, "f16c", f->f16c ? Py_True : Py_False, "popcnt",
                         f->popcnt ? Py_True : Py_False, "avx512f", f->avx512f ? Py_True : Py_False, "avx512bw",
                         f->avx512bw ? Py_True : Py_False, "avx512vl", f->avx512vl ? Py_True : Py_False,
                         "avx512vpopcntdq", f->avx512vpopcntdq ? Py_True : Py_False);
}

PyDoc_STRVAR(function_pointers_doc,
             "function_pointers() -> dict[str, int]\n\nAddresses of the active level's C kernels (signatures in "
             "native/include/vecdb_kernels.h), for ctypes/numba callers. They stay valid for the life of the "
             "process but differ between processes, and the C functions do not check their arguments.");

static PyObject *add_pointer(PyObject *dict, const char *name, uintptr_t address) {
    PyObject *value = PyLong_FromUnsignedLongLong((unsigned long long)address);
    if (value == NULL || PyDict_SetItemString(dict, name, value) < 0) {
        Py_XDECREF(value);
        return NULL;
    }
    Py_DECREF(value);
    return dict;
}

static PyObject *py_function_pointers(PyObject *self, PyObject *unused) {
    const vdb_kernel_table *t = vdb_active_table();
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    if (!add_pointer(d, "distances_f32", (uintptr_t)t->distances_f32) ||
        !add_pointer(d, "distances_f32_at", (uintptr_t)t->distances_f32_at) ||
        !add_pointer(d, "distances_f16", (uintptr_t)t->distances_f16) ||
        !add_pointer(d, "distances_sq8", (uintptr_t)t->distances_sq8) ||
        !add_pointer(d, "hamming", (uintptr_t)t->hamming) ||
        !add_pointer(d, "bitplane_ip_sym", (uintptr_t)t->bitplane_ip_sym) ||
        !add_pointer(d, "bitplane_ip_asym", (uintptr_t)t->bitplane_ip_asym) ||
        !add_pointer(d, "pq_adc", (uintptr_t)t->pq_adc) || !add_pointer(d, "pq4_fastscan", (uintptr_t)t->pq4_fastscan) ||
        !add_pointer(d, "topk", (uintptr_t)t->topk) ||
        !add_pointer(d, "topk_u16_offer", (uintptr_t)t->topk_u16_offer) ||
        !add_pointer(d, "hnsw_search", (uintptr_t)t->hnsw_search)) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

#define KWFN(name) {#name, (PyCFunction)(void (*)(void))py_##name, METH_VARARGS | METH_KEYWORDS, name##_doc}

static PyMethodDef methods[] = {
    KWFN(distances_f32),
    KWFN(distances_f32_at),
    KWFN(topk_f32_at),
    KWFN(distances_f16),
    KWFN(distances_sq8),
    KWFN(hamming),
    KWFN(bitplane_ip_sym),
    KWFN(bitplane_ip_asym),
    KWFN(pq_adc),
    KWFN(pq4_fastscan),
    KWFN(topk),
    KWFN(topk_u16),
    KWFN(pq4_fastscan_topk),
    {"simd_level", py_simd_level, METH_NOARGS, simd_level_doc},
    {"set_simd_level", py_set_simd_level, METH_O, set_simd_level_doc},
    {"cpu_features", py_cpu_features, METH_NOARGS, cpu_features_doc},
    {"function_pointers", py_function_pointers, METH_NOARGS, function_pointers_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "vecdb._native",
    "vecdb's C kernels (SIMD, dispatched at import). Semantics: vecdb/kernels/reference.py.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    vdb_init();
    /* VECDB_SIMD caps the level (e.g. to test or benchmark the scalar floor on a SIMD machine). */
    const char *cap = getenv("VECDB_SIMD");
    if (cap != NULL && cap[0] != '\0') {
        int level = level_from_name(cap);
        if (level < 0) {
            if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                 "VECDB_SIMD=%s is not one of scalar, avx2, avx512; using the best level", cap) < 0)
                return NULL;
        } else {
            vdb_set_level(level);
        }
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && vdb_searcher_register(module) < 0) Py_CLEAR(module);
    return module;
}
