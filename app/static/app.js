// sdilab's small client script. No inline scripts anywhere (the CSP forbids them):
// pages opt in to behaviour with data- attributes.
"use strict";
