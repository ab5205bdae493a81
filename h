HTTP/1.1 400 Bad Request
Connection: close
Content-Type: text/html
Content-Length: 189

