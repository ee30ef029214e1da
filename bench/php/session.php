<?php
// session.php - the PHP baseline of bench/gateway.bash: what a PHP app pays
// for its session on every request (session_start() with the default
// "files" handler; read a value, no change, so lazy_write skips the write).
session_start();
if (!isset($_SESSION['user'])) {
    $_SESSION['user'] = 'alice';
}
header('Content-Type: text/plain');
echo "ok ", $_SESSION['user'], "\n";
