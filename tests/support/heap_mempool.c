/*
 * heap_mempool.c - heap-backed mbuf pool for EAL-less tests. See the header.
 */
#include "tests/support/heap_mempool.h"

#include <stdlib.h>
#include <string.h>

#include <rte_mempool.h>

/* The pool's backing store: a stack of free object pointers. */
struct heap_pool_data {
	unsigned top;		/* number of free objects on the stack */
	unsigned cap;
	void *block;		/* all objects, with their headers */
	void *objs[];
};

static int heap_ops_alloc(struct rte_mempool *mp) { (void)mp; return 0; }
static void heap_ops_free(struct rte_mempool *mp) { (void)mp; }

static int heap_ops_enqueue(struct rte_mempool *mp, void *const *objs, unsigned n)
{
	struct heap_pool_data *d = mp->pool_data;
	if (d->top + n > d->cap)
		abort();	/* double free: a test bug worth dying for */
	for (unsigned i = 0; i < n; i++)
		d->objs[d->top++] = objs[i];
	return 0;
}

static int heap_ops_dequeue(struct rte_mempool *mp, void **objs, unsigned n)
{
	struct heap_pool_data *d = mp->pool_data;
	if (d->top < n)
		return -ENOBUFS;
	for (unsigned i = 0; i < n; i++)
		objs[i] = d->objs[--d->top];
	return 0;
}

static unsigned heap_ops_count(const struct rte_mempool *mp)
{
	const struct heap_pool_data *d = mp->pool_data;
	return d->top;
}

static struct rte_mempool_ops heap_ops = {
	.name = "sluice_heap",
	.alloc = heap_ops_alloc,
	.free = heap_ops_free,
	.enqueue = heap_ops_enqueue,
	.dequeue = heap_ops_dequeue,
	.get_count = heap_ops_count,
};

static int heap_ops_index(void)
{
	static int index = -1;	/* registered once per process */
	if (index < 0)
		index = rte_mempool_register_ops(&heap_ops);
	return index;
}

struct rte_mempool *heap_mempool_create(const char *name, unsigned n,
					uint16_t data_room)
{
	struct rte_mempool *mp;
	struct rte_pktmbuf_pool_private *priv;
	struct heap_pool_data *d;
	size_t hdr = sizeof(struct rte_mempool_objhdr);
	size_t elt = sizeof(struct rte_mbuf) + data_room;
	/* Each slot: one cache line holding the object header at its end, then the mbuf. */
	size_t stride = RTE_CACHE_LINE_SIZE + RTE_ALIGN_CEIL(elt, RTE_CACHE_LINE_SIZE);
	int ops = heap_ops_index();

	if (ops < 0)
		return NULL;
	mp = aligned_alloc(RTE_CACHE_LINE_SIZE,
			   RTE_ALIGN_CEIL(sizeof(*mp) + sizeof(*priv), RTE_CACHE_LINE_SIZE));
	d = calloc(1, sizeof(*d) + n * sizeof(void *));
	if (!mp || !d) {
		free(mp);
		free(d);
		return NULL;
	}
	memset(mp, 0, sizeof(*mp) + sizeof(*priv));
	snprintf(mp->name, sizeof(mp->name), "%s", name);
	mp->size = n;
	mp->cache_size = 0;
	mp->elt_size = (uint32_t)elt;
	mp->header_size = (uint32_t)hdr;
	mp->private_data_size = sizeof(*priv);
	mp->ops_index = ops;
	mp->pool_data = d;
	mp->socket_id = SOCKET_ID_ANY;

	priv = rte_mempool_get_priv(mp);
	priv->mbuf_data_room_size = data_room;
	priv->mbuf_priv_size = 0;

	d->cap = n;
	d->block = aligned_alloc(RTE_CACHE_LINE_SIZE, stride * n);
	if (!d->block) {
		free(d);
		free(mp);
		return NULL;
	}
	memset(d->block, 0, stride * n);
	for (unsigned i = 0; i < n; i++) {
		char *base = (char *)d->block + i * stride;
		char *obj = base + RTE_CACHE_LINE_SIZE;
		struct rte_mempool_objhdr *oh;
		oh = (struct rte_mempool_objhdr *)(obj - hdr);
		oh->mp = mp;
		oh->iova = (rte_iova_t)(uintptr_t)obj;
		rte_pktmbuf_init(mp, NULL, obj, i);
		d->objs[d->top++] = obj;
	}
	mp->populated_size = n;
	return mp;
}

void heap_mempool_free(struct rte_mempool *mp)
{
	struct heap_pool_data *d;
	if (!mp)
		return;
	d = mp->pool_data;
	free(d->block);
	free(d);
	free(mp);
}

unsigned heap_mempool_avail(const struct rte_mempool *mp)
{
	return heap_ops_count(mp);
}
