"use strict";
// Shows the refusal note after a wrong token (the server redirects to /?denied=1).
if (new URLSearchParams(location.search).has("denied")) document.getElementById("denied").hidden = false;
