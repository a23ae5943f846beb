// Eviction in C: the largest evictable model goes first (ties: least recently used first), so
// one big model frees room before many small ones are lost. Pinned and loaded models are never
// chosen. Built with wit-bindgen's C generator against ../../../wit (world eviction-policy).

#include <stdlib.h>
#include <string.h>

#include "eviction_policy.h"

typedef exports_porten_policy_eviction_candidate_t candidate_t;

static int larger_first(const void *a, const void *b) {
  const candidate_t *x = *(const candidate_t *const *)a;
  const candidate_t *y = *(const candidate_t *const *)b;
  if (x->size_bytes != y->size_bytes) return x->size_bytes > y->size_bytes ? -1 : 1;
  if (x->last_used_ms != y->last_used_ms) return x->last_used_ms < y->last_used_ms ? -1 : 1;
  return 0;
}

void exports_porten_policy_eviction_choose_victims(
    exports_porten_policy_eviction_request_t *request, eviction_policy_list_string_t *ret) {
  size_t n = request->candidates.len;
  candidate_t **order = malloc((n ? n : 1) * sizeof *order);
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    candidate_t *c = &request->candidates.ptr[i];
    if (!c->pinned && !c->loaded) order[count++] = c;
  }
  qsort(order, count, sizeof *order, larger_first);
  ret->ptr = malloc((count ? count : 1) * sizeof *ret->ptr);
  ret->len = count;
  for (size_t i = 0; i < count; i++) {
    eviction_policy_string_dup_n(&ret->ptr[i], (const char *)order[i]->model.ptr,
                                 order[i]->model.len);
  }
  free(order);
  exports_porten_policy_eviction_request_free(request);
}
