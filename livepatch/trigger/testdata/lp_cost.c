/* lp_cost: the same work as libcost.c (x * 3 + 2 instead of x * 3 + 1, so the
 * program can tell), so the difference in cost is the redirect. */
int cost_lp(int x) { return x * 3 + 2; }
