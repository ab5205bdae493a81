<html>
  <head>
    <title>Bad Request</title>
  </head>
  <body>
    <h1><p>Bad Request</p></h1>
    Invalid Method &#x27;Invalid HTTP method: &#x27;GET\\x00&#x27;&#x27;
  </body>
</html>
