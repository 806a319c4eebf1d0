/* keysource: implementation pending. */
#include "lib/keysource.h"
