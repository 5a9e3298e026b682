/* Placeholder until the machine lands: see system/vl.c. */
#include "qemu/osdep.h"

int main(int argc, char **argv)
{
    fprintf(stderr, "snapvm: not built yet\n");
    return 1;
}
