from jwt_auth.cli import main

main()
