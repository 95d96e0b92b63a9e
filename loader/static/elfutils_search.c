// SPDX-License-Identifier: Apache-2.0
/*
 * NODEPORT_STATIC only: the search-tree functions elfutils >= 0.191 keeps in
 * its internal helper library (lib/eu-search.c, declared in lib/eu-search.h),
 * which Debian's libelf.a (0.192, bookworm-backports) calls but does not
 * contain: libelf.so has them built in, the static archive leaves them
 * undefined, so linking libelf.a fails with "undefined reference to
 * eu_search_tree_init". cmake/StaticDeps.cmake adds this file only when
 * libelf.a needs the symbols and lacks them.
 *
 * elfutils' search_tree is { void *root; <lock>; }, where the lock is a
 * pthread_rwlock_t only in builds configured with thread safety (then libelf.a
 * itself would call pthread_rwlock_*; Debian's does not). So these touch
 * only `root`, the first member in either layout, and serialise with a lock
 * of their own.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <search.h>
#include <stddef.h>

typedef struct {
	void *root;
} np_search_tree;

static pthread_mutex_t np_search_lock = PTHREAD_MUTEX_INITIALIZER;

void *eu_tsearch(const void *key, np_search_tree *tree, int (*compare)(const void *, const void *))
{
	pthread_mutex_lock(&np_search_lock);
	void *ret = tsearch(key, &tree->root, compare);
	pthread_mutex_unlock(&np_search_lock);
	return ret;
}

void *eu_tfind(const void *key, np_search_tree *tree, int (*compare)(const void *, const void *))
{
	pthread_mutex_lock(&np_search_lock);
	void *ret = tfind(key, &tree->root, compare);
	pthread_mutex_unlock(&np_search_lock);
	return ret;
}

void *eu_tdelete(const void *key, np_search_tree *tree, int (*compare)(const void *, const void *))
{
	pthread_mutex_lock(&np_search_lock);
	void *ret = tdelete(key, &tree->root, compare);
	pthread_mutex_unlock(&np_search_lock);
	return ret;
}

void eu_tdestroy(np_search_tree *tree, void (*free_node)(void *))
{
	pthread_mutex_lock(&np_search_lock);
	tdestroy(tree->root, free_node);
	tree->root = NULL;
	pthread_mutex_unlock(&np_search_lock);
}

void eu_search_tree_init(np_search_tree *tree)
{
	tree->root = NULL;
}

void eu_search_tree_fini(np_search_tree *tree, void (*free_node)(void *))
{
	eu_tdestroy(tree, free_node);
}
