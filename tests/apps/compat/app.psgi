# PSGI (starman, via SERVER_STARTER_PORT): answers "ok SLOT".
my $id = $ENV{WPOOL_WORKER_ID} // "?";
sub { [200, ["Content-Type" => "text/plain"], ["ok $id\n"]] };
