/* libcost: the functions callcost.c times; built once with the pad
 * (COST=cost_pad) and once without (COST=cost_entry). */
int COST(int x) { return x * 3 + 1; }
